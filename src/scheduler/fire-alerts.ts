import { alertRecords } from '../shared/codecs/alert-records.js';
import { taskIdFor } from '../shared/codecs/task-message.js';
import type { SchedulerOrigin } from '../shared/codecs/task-message.js';
import type { OutRecord } from '../shared/kafka/index.js';
import type { Alert } from '../shared/schedule/alerts.js';
import type { Fire } from './fire-loop.js';
import type { DroppedInstants } from './misfire.js';

/**
 * The `late` alert of a fire published at `firedAtMs`, when its schedule has `lateSeconds` and the fire was handed
 * to the producer more than that after it was due (its instant, plus its jitter delay: a delay is intended, not
 * late). Catch-up fires after an outage are late fires too. Triggers and backfills are of no instant: never late.
 */
export function lateAlertOf(fire: Fire, firedAtMs: number, group: string): Alert | undefined {
  const seconds = fire.entry.alerts?.lateSeconds;
  if (seconds === undefined || fire.manual || fire.backfill) return undefined;
  const lateMs = firedAtMs - (fire.dueAt ?? fire.scheduledFor);
  if (lateMs <= seconds * 1000) return undefined;
  return {
    kind: 'late',
    scheduleId: fire.entry.id,
    taskId: taskIdFor(fire.entry.id, fire.scheduledFor),
    scheduledFor: new Date(fire.scheduledFor).toISOString(),
    reason: `fired ${(lateMs / 1000).toFixed(1)} s after it was due (lateSeconds ${seconds})`,
    at: new Date(firedAtMs).toISOString(),
    group,
  };
}

/**
 * The records of a fire's `late` alert, none when it is not late: written in the transaction that publishes the
 * fire, so the alert is raised exactly when the fire is, once across failover.
 */
export function lateAlertRecords(fire: Fire, firedAtMs: number, scheduler: SchedulerOrigin): OutRecord[] {
  const alert = lateAlertOf(fire, firedAtMs, scheduler.group);
  if (!alert || !fire.entry.alerts) return [];
  const by = { host: scheduler.host, pid: scheduler.pid, role: 'scheduler' as const };
  return alertRecords(alert, fire.entry.alerts, fire.entry.topic, by, scheduler);
}

/**
 * The `missed` alerts of one state partition's owner: the instants its takeover's misfire policy dropped, per entry
 * whose alerts ask for them, written in the transaction of the entry's first fire after the takeover (the caught-up
 * fire, or with `Misfire: skip` the next one). That transaction moves the entry's last fired instant past them, so the
 * alert is raised once across failover: an owner that dies before it commits leaves the same instants to the next
 * owner, whose alert has the same taskId (`alert/<id>/missed@<first dropped instant>`).
 */
export class MissedAlerts {
  private readonly pending = new Map<string, DroppedInstants>();

  /** Instants of an entry not fired; with some still to alert, one alert says both. */
  note(entryId: string, dropped: DroppedInstants): void {
    const before = this.pending.get(entryId);
    if (!before) {
      this.pending.set(entryId, dropped);
      return;
    }
    const more = before.more === true || dropped.more === true;
    this.pending.set(entryId, {
      count: before.count + dropped.count,
      first: Math.min(before.first, dropped.first),
      last: Math.max(before.last, dropped.last),
      expired: before.expired + dropped.expired,
      ...(more ? { more } : {}),
    });
  }

  /** The alert records of the first fire of each entry in `fires` with dropped instants pending (none usually). */
  records(fires: readonly Fire[], firedAtMs: number, scheduler: SchedulerOrigin): OutRecord[] {
    if (this.pending.size === 0) return [];
    const out: OutRecord[] = [];
    const done = new Set<string>();
    for (const fire of fires) {
      const d = fire.manual ? undefined : this.pending.get(fire.entry.id);
      if (!d || !fire.entry.alerts || done.has(fire.entry.id)) continue;
      done.add(fire.entry.id);
      const alert: Alert = {
        kind: 'missed',
        scheduleId: fire.entry.id,
        taskId: taskIdFor(fire.entry.id, d.first),
        scheduledFor: new Date(d.first).toISOString(),
        reason: missedReason(fire.entry, d),
        at: new Date(firedAtMs).toISOString(),
        group: scheduler.group,
      };
      const by = { host: scheduler.host, pid: scheduler.pid, role: 'scheduler' as const };
      out.push(...alertRecords(alert, fire.entry.alerts, fire.entry.topic, by, scheduler));
    }
    return out;
  }

  /** The fires committed: the entries whose missed alert went out with them, no longer pending. */
  acked(fires: readonly Fire[]): string[] {
    if (this.pending.size === 0) return [];
    const raised = new Set<string>();
    for (const f of fires)
      if (!f.manual && f.entry.alerts && this.pending.delete(f.entry.id)) raised.add(f.entry.id);
    return [...raised];
  }
}

/** Why instants were not fired: older than the misfire window (the owner was down, or stalled, that long), or the policy. */
export function missedReason(
  e: { misfire: string; misfireWindowSeconds: number },
  d: DroppedInstants,
): string {
  const range = `${d.more ? 'more than ' : ''}${d.count} instant(s) from ${new Date(d.first).toISOString()} to ${new Date(d.last).toISOString()} not fired`;
  const old = `older than MisfireWindowSeconds (${e.misfireWindowSeconds}) when a scheduler could fire them`;
  const policy = `Misfire ${e.misfire} drops them`;
  if (d.expired === d.count) return `${range}: ${old}`;
  if (d.expired === 0) return `${range}: no scheduler owned the entry then, and ${policy}`;
  return `${range}: no scheduler owned the entry then; ${d.more ? 'more than ' : ''}${d.expired} ${old}, and of the others ${policy}`;
}
