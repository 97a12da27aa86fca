import { compileCron } from '../cron.js';
import { formatDuration } from '../duration.js';
import type { CompiledSchedule } from './compiled.js';

/** When an entry fires: a cron spec in its zone, once at an instant, or every fixed interval from an anchor. */
export type ScheduleSpec =
  | { readonly kind: 'cron'; readonly cron: string }
  | { readonly kind: 'once'; readonly runAt: number }
  | { readonly kind: 'every'; readonly everyMs: number; readonly anchorMs: number };

/** The shortest interval an `every` schedule may have. */
export const MIN_EVERY_MS = 1000;
/** The longest (10 years): instants stay far inside what a Date can hold. */
export const MAX_EVERY_MS = 3650 * 24 * 3600_000;

/** The spec as an operator reads it: the cron text, `once at <ISO>`, `every 5s`. */
export function describeSpec(s: ScheduleSpec): string {
  if (s.kind === 'cron') return s.cron;
  if (s.kind === 'once') return `once at ${new Date(s.runAt).toISOString()}`;
  return `every ${formatDuration(s.everyMs)}`;
}

/**
 * The fire-time function of a spec: `nextAfter(t)` is its first instant strictly after t. Cron specs are compiled
 * once and shared (see compileCron); `once` has one instant; `every` has anchor + k × interval for every k. A
 * scheduler holds one per API task (a million, say): a small object each, its description made only when read.
 */
export function compileSpec(s: ScheduleSpec, zone: string): CompiledSchedule {
  if (s.kind === 'cron') return compileCron(s.cron, zone);
  return s.kind === 'once' ? new OnceSchedule(s, zone) : new EverySchedule(s, zone);
}

/** A `once` or `every` spec compiled: its description is made when read. */
abstract class SpecSchedule<S extends ScheduleSpec> implements CompiledSchedule {
  constructor(
    protected readonly s: S,
    readonly zone: string,
  ) {}

  get spec(): string {
    return describeSpec(this.s);
  }

  abstract nextAfter(after: number): number | undefined;
}

class OnceSchedule extends SpecSchedule<Extract<ScheduleSpec, { kind: 'once' }>> {
  nextAfter(after: number): number | undefined {
    return this.s.runAt > after ? this.s.runAt : undefined;
  }
}

class EverySchedule extends SpecSchedule<Extract<ScheduleSpec, { kind: 'every' }>> {
  nextAfter(after: number): number {
    const { everyMs, anchorMs } = this.s;
    if (after < anchorMs) return anchorMs;
    return anchorMs + (Math.floor((after - anchorMs) / everyMs) + 1) * everyMs;
  }
}
