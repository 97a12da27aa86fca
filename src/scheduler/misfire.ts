import type { ScheduleEntry } from '../shared/config/schema.js';
import type { CompiledSchedule } from '../shared/schedule/compiled.js';
import { JitteredSchedule, scheduleTimes } from '../shared/schedule/jitter.js';

/** At most this many missed instants are fired for one entry under `fire-all`. */
export const FIRE_ALL_LIMIT = 1000;

/** Instants an entry did not fire: how many (`more`: at least that many), the first and the last. */
export interface DroppedInstants {
  count: number;
  first: number;
  last: number;
  /** How many of them were older than the misfire window (counted up to {@link EXPIRED_COUNT_LIMIT}). */
  expired: number;
  /** More than {@link EXPIRED_COUNT_LIMIT} were older than the window: `count` is a lower bound. */
  more?: boolean;
}

/** Instants older than an entry's misfire window are counted up to this many (a long outage of a busy spec). */
export const EXPIRED_COUNT_LIMIT = 10_000;

/**
 * The instants of `cron` after `afterMs` and at or before `untilMs`: how many (up to `limit`; `more` past it), the
 * first and the last. The last is found without walking them all when there are more than `limit`.
 */
export function instantsBetween(
  cron: CompiledSchedule,
  afterMs: number,
  untilMs: number,
  limit = EXPIRED_COUNT_LIMIT,
): { count: number; first: number; last: number; more: boolean } | undefined {
  const first = cron.nextAfter(afterMs);
  if (first === undefined || first > untilMs) return undefined;
  let count = 1;
  let last = first;
  for (let t = cron.nextAfter(first); t !== undefined && t <= untilMs; t = cron.nextAfter(t)) {
    if (count >= limit) return { count, first, last: lastAtOrBefore(cron, last, untilMs), more: true };
    count++;
    last = t;
  }
  return { count, first, last, more: false };
}

/** The instants after `afterMs` and at or before `untilMs`, all older than the misfire window: dropped. */
export function expiredGap(
  cron: CompiledSchedule,
  afterMs: number,
  untilMs: number,
): DroppedInstants | undefined {
  const gap = instantsBetween(cron, afterMs, untilMs);
  if (!gap) return undefined;
  const { count, first, last, more } = gap;
  return { count, first, last, expired: count, ...(more ? { more } : {}) };
}

/** The latest instant of `cron` after `afterMs` (itself an instant) and at or before `untilMs`, else `afterMs`. */
function lastAtOrBefore(cron: CompiledSchedule, afterMs: number, untilMs: number): number {
  // Look back from untilMs over doubling spans until one holds an instant, then walk that span forward.
  for (let span = 1000; ; span *= 2) {
    const from = Math.max(afterMs, untilMs - span);
    let t = cron.nextAfter(from);
    if (t !== undefined && t <= untilMs) {
      let last = t;
      while ((t = cron.nextAfter(last)) !== undefined && t <= untilMs) last = t;
      return last;
    }
    if (from === afterMs) return afterMs;
  }
}

/**
 * The times an entry missed while no scheduler owned it, and which of them to fire now: those after its last
 * fired instant, at or before now, and inside its misfire window are missed; then `skip` fires none, `fire-once`
 * the latest, `fire-all` each (oldest first, the latest 1000 at most). Those older than the window are never fired
 * (`dropped.expired`). `dropped`: every instant after the last fired one not fired. An entry never fired before (or
 * disabled) has missed nothing. With jitter, "at or before now" and "inside the window" are of when an instant was
 * due: one whose delay ends after now is not missed, the fire loop arms it.
 */
export function misfireOf(
  entry: ScheduleEntry,
  cron: CompiledSchedule,
  lastFiredMs: number | undefined,
  nowMs: number,
): { fire: number[]; missed: number; dropped?: DroppedInstants } {
  if (lastFiredMs === undefined || !entry.enabled) return { fire: [], missed: 0 };
  const windowStart = nowMs - entry.misfireWindowSeconds * 1000;
  const times = new JitteredSchedule(cron, entry.id, entry.jitter);
  // Instants surely due before the window (an instant is due less than jitterMs after it): older than the window.
  const scanFrom = windowStart - 1 - times.jitterMs;
  const old = lastFiredMs < scanFrom ? instantsBetween(cron, lastFiredMs, scanFrom) : undefined;
  let expired = old?.count ?? 0;
  let firstExpired = old?.first;
  let lastExpired = old?.last;
  const out: number[] = [];
  let missed = 0;
  /** The first and last instants missed, and the last one `fire-all`'s limit pushed out. */
  let first: number | undefined;
  let last: number | undefined;
  let pushedOut: number | undefined;
  let t = cron.nextAfter(Math.max(lastFiredMs, scanFrom));
  for (; t !== undefined && t <= nowMs; t = cron.nextAfter(t)) {
    if (times.jitterMs > 0) {
      // Due instants keep their order (jitter.ts): the first one due after now ends what was missed.
      const due = times.dueOf(t);
      if (due > nowMs) break;
      if (due < windowStart) {
        expired++;
        firstExpired ??= t;
        lastExpired = t;
        continue;
      }
    }
    missed++;
    first ??= t;
    last = t;
    // Counting what `skip` drops is only for metrics: stop at the fire-all limit rather than walk a long window.
    if (entry.misfire === 'skip' && missed >= FIRE_ALL_LIMIT) break;
    if (entry.misfire !== 'skip') {
      out.push(t);
      if (out.length > FIRE_ALL_LIMIT) pushedOut = out.shift();
    }
  }
  const fire = entry.misfire === 'fire-once' ? out.slice(-1) : out;
  const inWindow = missed - fire.length;
  if (inWindow === 0 && expired === 0) return { fire, missed };
  // What is not fired is the oldest part of what was missed: from the first instant to the one before the first fired.
  const lastDropped =
    inWindow === 0
      ? undefined
      : entry.misfire === 'skip'
        ? last
        : entry.misfire === 'fire-once'
          ? (out.at(-2) ?? pushedOut)
          : pushedOut;
  const dFirst = firstExpired ?? first ?? 0;
  const dropped: DroppedInstants = {
    count: inWindow + expired,
    first: dFirst,
    last: lastDropped ?? lastExpired ?? first ?? dFirst,
    expired,
    ...(old?.more ? { more: true } : {}),
  };
  return { fire, missed, dropped };
}

/** The instants `misfireOf` says to fire. */
export function missedInstants(
  entry: ScheduleEntry,
  cron: CompiledSchedule,
  lastFiredMs: number | undefined,
  nowMs: number,
): number[] {
  return misfireOf(entry, cron, lastFiredMs, nowMs).fire;
}

/**
 * A one-shot entry whose instant passed before any scheduler fired it (created late, or while the group was
 * down) fires at once, whatever its misfire policy and misfire window: the instant to fire, or undefined. With jitter, it
 * is overdue once its delay has passed too (until then the fire loop arms it); outside its window it never is.
 */
export function overdueOnce(
  entry: ScheduleEntry,
  lastFiredMs: number | undefined,
  nowMs: number,
): number | undefined {
  if (entry.spec.kind !== 'once' || !entry.enabled || lastFiredMs !== undefined) return undefined;
  const times = scheduleTimes(entry.spec, entry, entry.id, entry.excluded);
  // Outside its StartAt/EndAt window, or on a date its calendars exclude, it never fires.
  const runAt = times.compiled.nextAfter(-Infinity);
  return runAt !== undefined && times.dueOf(runAt) <= nowMs ? runAt : undefined;
}
