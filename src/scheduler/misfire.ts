import type { ScheduleEntry } from '../shared/config/schema.js';
import type { CompiledSchedule } from '../shared/schedule/compiled.js';
import { JitteredSchedule, scheduleTimes } from '../shared/schedule/jitter.js';

/** At most this many missed instants are fired for one entry under `fire-all`. */
export const FIRE_ALL_LIMIT = 1000;

/**
 * The times an entry missed while no scheduler owned it, and which of them to fire now: those after its last
 * fired instant, at or before now, and inside its misfire window are missed; then `skip` fires none, `fire-once`
 * the latest, `fire-all` each (oldest first, the latest 1000 at most). An entry never fired before (or disabled)
 * has missed nothing. With jitter, "at or before now" and "inside the window" are of when an instant was due: one
 * whose delay ends after now is not missed, the fire loop arms it.
 */
export function misfireOf(
  entry: ScheduleEntry,
  cron: CompiledSchedule,
  lastFiredMs: number | undefined,
  nowMs: number,
): { fire: number[]; missed: number; dropped?: { first: number; last: number } } {
  if (lastFiredMs === undefined || !entry.enabled) return { fire: [], missed: 0 };
  const windowStart = nowMs - entry.misfireWindowSeconds * 1000;
  const times = new JitteredSchedule(cron, entry.id, entry.jitter);
  const out: number[] = [];
  let missed = 0;
  /** The first and last instants missed, and the last one `fire-all`'s limit pushed out. */
  let first: number | undefined;
  let last: number | undefined;
  let pushedOut: number | undefined;
  let t = cron.nextAfter(Math.max(lastFiredMs, windowStart - 1 - times.jitterMs));
  for (; t !== undefined && t <= nowMs; t = cron.nextAfter(t)) {
    if (times.jitterMs > 0) {
      // Due instants keep their order (jitter.ts): the first one due after now ends what was missed.
      const due = times.dueOf(t);
      if (due > nowMs) break;
      if (due < windowStart) continue;
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
  if (first === undefined || last === undefined || missed === fire.length) return { fire, missed };
  // What is not fired is the oldest part of what was missed: from the first instant to the one before the first fired.
  const lastDropped =
    entry.misfire === 'skip' ? last : entry.misfire === 'fire-once' ? (out.at(-2) ?? pushedOut) : pushedOut;
  return { fire, missed, dropped: { first, last: lastDropped ?? first } };
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
