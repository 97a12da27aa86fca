import { alertRecords } from '../shared/codecs/alert-records.js';
import { taskIdFor } from '../shared/codecs/task-message.js';
import type { SchedulerOrigin } from '../shared/codecs/task-message.js';
import type { OutRecord } from '../shared/kafka/index.js';
import type { Alert } from '../shared/schedule/alerts.js';
import type { Fire } from './fire-loop.js';

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
