import { Ajv } from 'ajv';
import type { OutRecord } from '../kafka/types.js';
import type { Origin } from '../messages.js';
import type { DlqReason } from './dlq-record.js';
import { taskIdsSchema } from './task-message.js';

/**
 * The records of `taskmanager.events` (docs/messages-and-topics.md#status-and-audit-events): status events (key = taskId, header `task-id`) and
 * audit events of taskapi (key = task id). The scheduler's SCHEDULED event has a fast path,
 * {@link fastScheduledValue}, giving byte for byte what {@link encodeEvent} gives for {@link scheduledEvent}.
 */

export const EVENTS_TOPIC = 'taskmanager.events';

/** `REPLAYED`: an operator re-published the task from the DLQ to its topic. */
export type TaskStatus = 'SCHEDULED' | 'EXECUTING' | 'FINISHED' | 'FAILED' | 'REPLAYED';

export type EventRole = 'scheduler' | 'consumer' | 'api' | 'operator';

/** A status event on `taskmanager.events`, keyed by taskId. */
export interface StatusEvent {
  v: 1;
  taskId: string;
  scheduleId: string;
  status: TaskStatus;
  at: string;
  attempt: number;
  by: Origin & { role: EventRole };
  durationMs?: number;
  error?: string;
  /** On FAILED: the task went to the DLQ and will not be retried. */
  final?: boolean;
  /** Where the task record was read from, on consumer events. */
  source?: { topic: string; partition: number; offset: string };
  /** On FAILED with final: the DLQ reason. */
  dlqReason?: DlqReason;
  /** What the processor reported: on FINISHED its result, on FAILED the failure's details. */
  result?: Record<string, unknown>;
}

export type AuditAction = 'task.created' | 'task.changed' | 'task.deleted' | 'task.triggered';

/** A change made through `taskapi`, on `taskmanager.events` (key = task id), with who made it. */
export interface AuditEvent {
  v: 1;
  kind: 'audit';
  action: AuditAction;
  task: string;
  /** The task's version after the change (before it, for a delete). */
  version: string;
  /** The user name, with the API token id when one was used. */
  user: string;
  at: string;
  from: { host: string; pid: number };
  /** task.triggered: the taskId of the fire. */
  taskId?: string;
}

/**
 * A change of an exclusion calendar made through `taskapi` (`PUT`/`DELETE /api/v1/calendars/{name}`), on
 * `taskmanager.events` (key = `calendar:<name>`), with who made it. Readers of status events skip it, as any audit
 * event.
 */
export interface CalendarAuditEvent {
  v: 1;
  kind: 'audit';
  action: 'calendar.changed' | 'calendar.deleted';
  calendar: string;
  user: string;
  at: string;
  from: { host: string; pid: number };
}

/** A calendar's audit event as its record. */
export function calendarAuditRecord(event: CalendarAuditEvent): OutRecord {
  return { topic: EVENTS_TOPIC, key: `calendar:${event.calendar}`, value: JSON.stringify(event) };
}

/** A status event with the fields every status has; `extra` adds the optional ones (after them, in its order). */
export function statusEvent(
  ids: { taskId: string; scheduleId: string },
  status: TaskStatus,
  at: string,
  attempt: number,
  by: StatusEvent['by'],
  extra: Partial<StatusEvent> = {},
): StatusEvent {
  return { v: 1, taskId: ids.taskId, scheduleId: ids.scheduleId, status, at, attempt, by, ...extra };
}

/** The SCHEDULED event of a fire (scheduler, taskapi's manual fire). */
export function scheduledEvent(
  ids: { taskId: string; scheduleId: string },
  at: string,
  by: StatusEvent['by'],
): StatusEvent {
  return statusEvent(ids, 'SCHEDULED', at, 0, by);
}

/** The typed encoder of both kinds. */
export function encodeEvent(event: StatusEvent | AuditEvent): string {
  return JSON.stringify(event);
}

/** A status event as its record (key = taskId, header `task-id`). */
export function statusEventRecord(event: StatusEvent): OutRecord {
  return statusRecordOf(event.taskId, encodeEvent(event));
}

/** The record of the status event of `taskId` whose value is `value` (encoded by this module). */
export function statusRecordOf(taskId: string, value: string): OutRecord {
  return { topic: EVENTS_TOPIC, key: taskId, value, headers: { 'task-id': taskId } };
}

/** An audit event as its record (key = task id, no headers). */
export function auditEventRecord(event: AuditEvent): OutRecord {
  return { topic: EVENTS_TOPIC, key: event.task, value: encodeEvent(event) };
}

/**
 * The fast path of {@link scheduledEvent} + {@link encodeEvent}: the same bytes from parts serialized once.
 * `taskIdJson` and `scheduleIdJson` are JSON texts, `at` a `Date#toISOString` text, `byJson` the `by` object as
 * JSON.
 */
export function fastScheduledValue(
  taskIdJson: string,
  scheduleIdJson: string,
  at: string,
  byJson: string,
): string {
  return (
    `{"v":1,"taskId":${taskIdJson},"scheduleId":${scheduleIdJson},"status":"SCHEDULED","at":"${at}",` +
    `"attempt":0,"by":${byJson}}`
  );
}

const eventSchema = {
  type: 'object',
  required: ['v', 'taskId', 'scheduleId', 'status', 'at', 'attempt', 'by'],
  properties: {
    ...taskIdsSchema,
    status: { type: 'string', enum: ['SCHEDULED', 'EXECUTING', 'FINISHED', 'FAILED', 'REPLAYED'] },
    at: { type: 'string' },
    attempt: { type: 'integer' },
    by: {
      type: 'object',
      required: ['host', 'pid', 'role'],
      properties: { host: { type: 'string' }, pid: { type: 'integer' }, role: { type: 'string' } },
    },
  },
} as const;

const isStatusEvent = new Ajv({ allErrors: true, strict: true }).compile<StatusEvent>(eventSchema);

/** A `taskmanager.events` record value as a status event, or undefined when it is none (events are advisory). */
export function parseStatusEvent(value: Buffer | null): StatusEvent | undefined {
  if (value === null) return undefined;
  try {
    const data: unknown = JSON.parse(value.toString('utf8'));
    return isStatusEvent(data) ? data : undefined;
  } catch {
    return undefined;
  }
}
