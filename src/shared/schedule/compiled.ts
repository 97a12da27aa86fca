/**
 * A schedule compiled for one zone: its fire-time function. Every kind compiles to one (cron in `cron.ts`, once and
 * every in `spec.ts`), and the fire loop, misfire rule and previews take nothing else.
 */
export interface CompiledSchedule {
  /** The spec as an operator reads it (the cron text, `once at <ISO>`, `every 5s`). */
  readonly spec: string;
  readonly zone: string;
  /** The first fire instant strictly after `afterMs` (epoch ms), or `undefined` when there is none. */
  nextAfter(afterMs: number): number | undefined;
}

/** The next `count` fire instants strictly after `afterMs`. */
export function nextInstants(schedule: CompiledSchedule, afterMs: number, count: number): number[] {
  const out: number[] = [];
  let t = afterMs;
  while (out.length < count) {
    const n = schedule.nextAfter(t);
    if (n === undefined) break;
    out.push(n);
    t = n;
  }
  return out;
}

/**
 * `schedule` limited to instants from `startMs` to `endMs` (both included): the active window of `StartAt` and
 * `EndAt`. Unbounded (±Infinity) ends leave it as it is.
 */
export function windowed(schedule: CompiledSchedule, startMs: number, endMs: number): CompiledSchedule {
  if (startMs === -Infinity && endMs === Infinity) return schedule;
  return {
    spec: schedule.spec,
    zone: schedule.zone,
    nextAfter: (after) => {
      const t = schedule.nextAfter(Math.max(after, startMs - 1));
      return t !== undefined && t <= endMs ? t : undefined;
    },
  };
}
