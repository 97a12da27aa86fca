import type { OutRecord } from '../kafka/types.js';
import { alertDelivery, alertScheduleId, alertTaskId } from '../schedule/alerts.js';
import type { Alert, AlertsOption } from '../schedule/alerts.js';
import { statusEvent, statusEventRecord } from './task-event.js';
import type { StatusEvent } from './task-event.js';
import { taskRecord } from './task-message.js';
import type { SchedulerOrigin, TaskMessage } from './task-message.js';

/**
 * The records of one alert (docs/messages-and-topics.md#alerts), written by the component that raised it in the same
 * produce request (or transaction) as what it is about: the ALERT status event of the run, and the task that
 * delivers it on `topic` (the schedule's task topic) for the channel's processor, keyed by `alert/<scheduleId>` so
 * it has a lane of its own and never waits behind the run it is about.
 */
export function alertRecords(
  alert: Alert,
  alerts: AlertsOption,
  topic: string,
  by: StatusEvent['by'],
  scheduler: SchedulerOrigin,
): OutRecord[] {
  const event = statusEvent(alert, 'ALERT', alert.at, 0, by, {
    alert: { kind: alert.kind, reason: alert.reason },
  });
  const { processor, payload } = alertDelivery(alert, alerts.channel);
  const task: TaskMessage = {
    v: 1,
    taskId: alertTaskId(alert),
    scheduleId: alertScheduleId(alert.scheduleId),
    processor,
    payload,
    scheduledFor: alert.scheduledFor,
    firedAt: alert.at,
    scheduler,
  };
  return [statusEventRecord(event), taskRecord(topic, task)];
}
