import type { ScheduleEntry } from '../shared/config/schema.js';
import type { CompiledCron } from '../shared/cron.js';

/** At most this many missed instants are fired for one entry under `fire-all`. */
export const FIRE_ALL_LIMIT = 1000;

/**
 * The instants to fire now for the times an entry missed while no scheduler owned it: those after its last fired
 * instant, at or before now, and inside its misfire window; then `skip` fires none, `fire-once` the latest,
 * `fire-all` each (oldest first, the latest 1000 at most). An entry never fired before has missed nothing.
 */
export function missedInstants(
  entry: ScheduleEntry,
  cron: CompiledCron,
  lastFiredMs: number | undefined,
  nowMs: number,
): number[] {
  if (lastFiredMs === undefined || entry.misfire === 'skip' || !entry.enabled) return [];
  const windowStart = nowMs - entry.misfireWindowSeconds * 1000;
  const out: number[] = [];
  let t = cron.nextAfter(Math.max(lastFiredMs, windowStart - 1));
  while (t !== undefined && t <= nowMs) {
    out.push(t);
    if (out.length > FIRE_ALL_LIMIT) out.shift();
    t = cron.nextAfter(t);
  }
  if (entry.misfire === 'fire-once') return out.slice(-1);
  return out;
}
