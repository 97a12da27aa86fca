import { encodeJson, EVENTS_TOPIC, taskHeaders, taskIdFor } from '../shared/messages.js';
import type { Origin, StatusEvent, TaskMessage } from '../shared/messages.js';
import type { OutRecord } from '../shared/kafka/index.js';
import type { Fire } from './fire-loop.js';

/** The task message of one fire (SPEC.md §4). */
export function taskMessageOf(
  fire: Fire,
  firedAtMs: number,
  scheduler: Origin & { group: string },
): TaskMessage {
  const e = fire.entry;
  return {
    v: 1,
    taskId: taskIdFor(e.id, fire.scheduledFor),
    scheduleId: e.id,
    processor: e.processor,
    ...(e.param === undefined ? {} : { param: e.param }),
    ...(e.payload === undefined ? {} : { payload: e.payload }),
    scheduledFor: new Date(fire.scheduledFor).toISOString(),
    firedAt: new Date(firedAtMs).toISOString(),
    scheduler,
  };
}

/** The task record (key = schedule Id) and its SCHEDULED event (key = taskId). */
export function fireRecords(task: TaskMessage, topic: string, origin: Origin): [OutRecord, OutRecord] {
  const event: StatusEvent = {
    v: 1,
    taskId: task.taskId,
    scheduleId: task.scheduleId,
    status: 'SCHEDULED',
    at: task.firedAt,
    attempt: 0,
    by: { ...origin, role: 'scheduler' },
  };
  return [
    { topic, key: task.scheduleId, value: encodeJson(task), headers: taskHeaders(task) },
    { topic: EVENTS_TOPIC, key: task.taskId, value: encodeJson(event), headers: { 'task-id': task.taskId } },
  ];
}
