import type { ScheduleEntry } from '../shared/config/schema.js';
import type { Logger } from '../shared/logger.js';
import { fireOf, limitReached, timesOf } from './fire-loop.js';
import type { Fire } from './fire-loop.js';
import type { EntryStates } from './entry-states.js';
import type { SchedulerMetrics } from './metrics.js';
import { misfireOf, overdueOnce } from './misfire.js';
import { specHashOf } from '../shared/codecs/scheduler-state.js';
import { wantsAlert } from '../shared/schedule/alerts.js';
import type { DroppedInstants } from './misfire.js';

/** A one-shot entry whose instant passed unfired goes out now (unless its MaxRuns are used up), and says so. */
export function overdueFire(
  e: ScheduleEntry,
  known: { lastFiredMs?: number; runs: number },
  now: number,
  logger: Logger,
): Fire | undefined {
  const at = limitReached(e, known.runs) ? undefined : overdueOnce(e, known.lastFiredMs, now);
  if (at === undefined) return undefined;
  logger.info(
    `one-shot ${e.id} was due at ${new Date(at).toISOString()} (${Math.round((now - at) / 1000)} s ago) and never ` +
      `fired: firing it now`,
    { scheduleId: e.id },
  );
  return fireOf(e, at, timesOf(e).dueOf(at), known.runs + 1);
}

/**
 * What a takeover owes the entries of its partition, from their state as read: the instants missed while nobody
 * owned them (per `Misfire`) and overdue one-shots, to fire now; each entry not paused is armed from now (or from
 * its last fired instant, should that be later; with jitter, an instant of the past whose delay ends after now is
 * armed too). `differing`: entries whose last record was written for another
 * definition.
 */
export function catchUp(
  mine: readonly ScheduleEntry[],
  states: EntryStates,
  now: number,
  o: {
    logger: Logger;
    metrics: SchedulerMetrics | undefined;
    arm(e: ScheduleEntry, fromMs: number, known: { lastFiredMs?: number; runs: number }): void;
    /** Instants the entry's misfire policy did not fire, for an entry whose alerts ask for `missed`. */
    dropped?(e: ScheduleEntry, dropped: DroppedInstants): void;
  },
): { missed: Fire[]; differing: string[] } {
  const missed: Fire[] = [];
  const differing: string[] = [];
  for (const e of mine) {
    const known = states.get(e.id);
    if (known && known.specHash !== specHashOf(e)) differing.push(e.id);
    // A paused entry misses nothing: it stays unarmed until resumed.
    if (known?.paused) continue;
    let runs = known?.runs ?? 0;
    const overdue = overdueFire(e, { lastFiredMs: known?.lastFiredMs, runs }, now, o.logger);
    if (overdue) missed.push(overdue);
    if (overdue) runs++;
    const times = timesOf(e);
    const m = misfireOf(e, times.compiled, known?.lastFiredMs, now);
    // MaxRuns: no more than the runs left, oldest first.
    const caught = e.maxRuns === undefined ? m.fire : m.fire.slice(0, Math.max(0, e.maxRuns - runs));
    for (const t of caught) missed.push(fireOf(e, t, times.dueOf(t), ++runs));
    o.metrics?.misfired(e.id, 'caught_up', caught.length);
    o.metrics?.misfired(e.id, 'dropped', m.missed - caught.length + (m.dropped?.expired ?? 0));
    if (m.dropped && wantsAlert(e.alerts, 'missed')) o.dropped?.(e, m.dropped);
    // After the instants just caught up: the loop takes the first due after now and after the last of them.
    o.arm(e, now, { lastFiredMs: caught.at(-1) ?? overdue?.scheduledFor ?? known?.lastFiredMs, runs });
  }
  return { missed, differing };
}
