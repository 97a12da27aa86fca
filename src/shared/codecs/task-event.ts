import { hostname } from 'node:os';
import { Ajv } from 'ajv';
import type { OutRecord, RecordHeaders } from '../kafka/types.js';
import type { Origin } from '../messages.js';
import { parseValidJson } from '../messages.js';
import type { DlqReason } from './dlq-record.js';
import { taskIdsSchema } from './task-message.js';
import { ALERT_KINDS } from '../schedule/alerts.js';
import type { AlertKind } from '../schedule/alerts.js';

/**
 * The records of `taskmanager.events` (docs/messages-and-topics.md#status-and-audit-events): status events (key = taskId, header `task-id`) and
 * audit events of taskapi (key = task id). The scheduler's SCHEDULED event has a fast path,
 * {@link fastScheduledValue}, giving byte for byte what {@link encodeEvent} gives for {@link scheduledEvent}.
 */

export const EVENTS_TOPIC = 'taskmanager.events';

/**
 * `REPLAYED`: an operator re-published the task from the DLQ to its topic. `CANCELLED` (final): a cancel request
 * stopped the task, before it started (`attempt` 0) or while it ran; `error` says who asked and why. `SKIPPED`
 * (final): its schedule's overlap policy is `skip` and a run of the same schedule was still running or waiting, so
 * it never started (`attempt` 0); `error` names that run. `PROGRESS` (never final, changes no run's state): how far
 * a running attempt is, from its processor's `ctx.progress`. `ALERT` (never final, changes no run's state): an
 * alert about the run was raised (`alert`: its kind and reason), by the consumer (`failed`, `skipped`, `overrun`) or
 * the scheduler (`late`, `missed`, `deadline`); its delivery is a task of its own, `alert/<scheduleId>/<kind>@<instant>`.
 */
export type TaskStatus =
  | 'SCHEDULED'
  | 'EXECUTING'
  | 'FINISHED'
  | 'FAILED'
  | 'REPLAYED'
  | 'CANCELLED'
  | 'SKIPPED'
  | 'PROGRESS'
  | 'ALERT';
export const TASK_STATUSES: readonly TaskStatus[] = [
  'SCHEDULED',
  'EXECUTING',
  'FINISHED',
  'FAILED',
  'REPLAYED',
  'CANCELLED',
  'SKIPPED',
  'PROGRESS',
  'ALERT',
];

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
  /**
   * When the attempt started, on the consumer's EXECUTING and on the events that end a started attempt (FINISHED,
   * FAILED, CANCELLED with `attempt` > 0). Absent from events written before it was added: readers take the
   * EXECUTING event's `at` then. A consumer writes EXECUTING only once an attempt has run `--executing-after-ms`,
   * so a short attempt's final event is its only one.
   */
  startedAt?: string;
  /** Where the task record was read from, on consumer events. */
  source?: { topic: string; partition: number; offset: string };
  /** On FAILED with final: the DLQ reason. */
  dlqReason?: DlqReason;
  /** What the processor reported: on FINISHED its result, on FAILED the failure's details. */
  result?: Record<string, unknown>;
  /** On PROGRESS: the fraction done (0..1) and the processor's message. */
  progress?: { fraction: number; message?: string };
  /** On ALERT: what kind of alert and why. */
  alert?: { kind: AlertKind; reason: string };
}

export type AuditAction =
  'task.created' | 'task.changed' | 'task.deleted' | 'task.triggered' | 'task.cancelled' | 'task.backfilled';

/**
 * Where taskapi's audit events go: their own topic, so readers of the run history (taskapi at every start, over the
 * `--history` window) never read them, and readers of the audit trail read nothing else. Written to
 * `taskmanager.events` before 1.x; those expire with that topic's retention.
 */
export const AUDIT_TOPIC = 'taskmanager.audit';

/** A change made through `taskapi`, on `taskmanager.audit` (key = task id), with who made it. */
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
  /** task.triggered: the taskId of the fire; task.cancelled: that of the run. */
  taskId?: string;
  /**
   * task.backfilled: the range asked for and how many of its instants were published (their taskIds are those
   * of the task topic's messages of this task with `scheduledFor` in the range and `firedAt` near `at`).
   */
  backfill?: { from: string; to: string; published: number };
  /** The scheduler group of the task (after the change). Absent from events written before it was added. */
  group?: string;
  /** task.changed: the fields of the definition the change set to another value. */
  changed?: string[];
  /** task.changed that paused (false) or resumed (true) the task. */
  enabled?: boolean;
}

/**
 * A change of an exclusion calendar made through `taskapi` (`PUT`/`DELETE /api/v1/calendars/{name}`), on
 * `taskmanager.audit` (key = `calendar:<name>`), with who made it.
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
  return auditRecordOf(`calendar:${event.calendar}`, event);
}

/** An audit event of any kind as its record on `taskmanager.audit`, keyed by what it is about (no headers). */
function auditRecordOf(key: string, event: AnyAuditEvent): OutRecord {
  return { topic: AUDIT_TOPIC, key, value: JSON.stringify(event) };
}

export type ScheduleAuditAction =
  'schedule.triggered' | 'schedule.paused' | 'schedule.resumed' | 'schedule.cancelled';

/**
 * An action on a schedule through `taskapi`'s `/api/v1/schedules/{group}/{id}/…` routes (a schedule file's entry,
 * or an API task by its schedule), on `taskmanager.audit` (key = `schedule:<group>/<id>`), with who asked.
 */
export interface ScheduleAuditEvent {
  v: 1;
  kind: 'audit';
  action: ScheduleAuditAction;
  schedule: string;
  group: string;
  user: string;
  at: string;
  from: { host: string; pid: number };
  /** schedule.triggered: the taskId of the fire; schedule.cancelled: that of the run. */
  taskId?: string;
}

/** A schedule's audit event as its record. */
export function scheduleAuditRecord(event: ScheduleAuditEvent): OutRecord {
  return auditRecordOf(`schedule:${event.group}/${event.schedule}`, event);
}

/**
 * A dead-lettered task re-published through `taskapi` (`POST /api/v1/dlq/{topic}/replay`), one event per entry,
 * on `taskmanager.audit` (key = `dlq:<dlq topic>`), with who asked.
 */
export interface DlqAuditEvent {
  v: 1;
  kind: 'audit';
  action: 'dlq.replayed';
  /** The DLQ topic, and the entry's `<partition>@<offset>` in it. */
  dlq: string;
  entry: string;
  /** The replayed task's taskId and its schedule's id, when its record names them. */
  taskId?: string;
  schedule?: string;
  user: string;
  at: string;
  from: { host: string; pid: number };
}

/** A DLQ replay's audit event as its record. */
export function dlqAuditRecord(event: DlqAuditEvent): OutRecord {
  return auditRecordOf(`dlq:${event.dlq}`, event);
}

/**
 * An alert acknowledged through `taskapi` (`POST /api/v1/alerts/{id}/ack`), on `taskmanager.audit` (key =
 * `alert:<id>`): the acknowledgement itself, read again at every start of taskapi.
 */
export interface AlertAuditEvent {
  v: 1;
  kind: 'audit';
  action: 'alert.acknowledged';
  /** The alert's id, the schedule and the run it is about, and its kind. */
  alert: string;
  schedule: string;
  taskId: string;
  alertKind: AlertKind;
  user: string;
  at: string;
  from: { host: string; pid: number };
}

/** An alert's acknowledgement as its record. */
export function alertAuditRecord(event: AlertAuditEvent): OutRecord {
  return auditRecordOf(`alert:${event.alert}`, event);
}

/** Every audit event taskapi writes. */
export type AnyAuditEvent =
  AuditEvent | CalendarAuditEvent | ScheduleAuditEvent | DlqAuditEvent | AlertAuditEvent;

/** Who wrote an audit event, where and when: the fields every kind has besides its action. */
export function auditStamp(user: string, nowMs: number): Pick<AuditEvent, 'user' | 'at' | 'from'> {
  return { user, at: new Date(nowMs).toISOString(), from: { host: hostname(), pid: process.pid } };
}

const auditSchema = {
  type: 'object',
  required: ['v', 'kind', 'action', 'user', 'at'],
  properties: {
    v: { type: 'integer' },
    kind: { const: 'audit' },
    action: { type: 'string' },
    user: { type: 'string' },
    at: { type: 'string' },
  },
} as const;

const isAuditEvent = new Ajv({ allErrors: true, strict: true }).compile<AnyAuditEvent>(auditSchema);

/**
 * A `taskmanager.audit` record value as an audit event (the fields every kind has are checked; actions and fields
 * of later versions pass through), or undefined when it is none.
 */
export function parseAuditEvent(value: Buffer | null): AnyAuditEvent | undefined {
  return parseValidJson(value, isAuditEvent);
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

/** The header every status event carries (its taskId) and no audit event does: readers skip on it unparsed. */
export const TASK_ID_HEADER = 'task-id';

/** The record of the status event of `taskId` whose value is `value` (encoded by this module). */
export function statusRecordOf(taskId: string, value: string): OutRecord {
  return { topic: EVENTS_TOPIC, key: taskId, value, headers: { [TASK_ID_HEADER]: taskId } };
}

/** An audit event as its record (key = task id, no headers). */
export function auditEventRecord(event: AuditEvent): OutRecord {
  return auditRecordOf(event.task, event);
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
    status: { type: 'string', enum: [...TASK_STATUSES] },
    at: { type: 'string' },
    attempt: { type: 'integer' },
    by: {
      type: 'object',
      required: ['host', 'pid', 'role'],
      properties: { host: { type: 'string' }, pid: { type: 'integer' }, role: { type: 'string' } },
    },
    progress: {
      type: 'object',
      required: ['fraction'],
      properties: { fraction: { type: 'number', minimum: 0, maximum: 1 }, message: { type: 'string' } },
    },
    alert: {
      type: 'object',
      required: ['kind', 'reason'],
      properties: { kind: { type: 'string', enum: [...ALERT_KINDS] }, reason: { type: 'string' } },
    },
  },
} as const;

const isStatusEvent = new Ajv({ allErrors: true, strict: true }).compile<StatusEvent>(eventSchema);

/** A `taskmanager.events` record value as a status event, or undefined when it is none (events are advisory). */
export function parseStatusEvent(value: Buffer | null): StatusEvent | undefined {
  return parseValidJson(value, isStatusEvent);
}

/**
 * The SCHEDULED events of many fires of one transaction in one record (docs/messages-and-topics.md#scheduled-batches):
 * the scheduler's fires share `at` and `by`, so a record per fire repeated them, and a key and header per fire, for
 * nothing. Header {@link SCHEDULED_BATCH_HEADER} (its fire count), no `task-id` header; key: the taskId of its first
 * fire.
 */
export interface ScheduledBatch {
  v: 1;
  status: 'SCHEDULED';
  at: string;
  by: StatusEvent['by'];
  /** `[taskId, scheduleId]` of each fire. */
  tasks: Array<[string, string]>;
}

/** The header of a {@link ScheduledBatch} record: how many fires it holds. */
export const SCHEDULED_BATCH_HEADER = 'scheduled-tasks';

/** Fires per {@link ScheduledBatch} record at most. */
export const SCHEDULED_BATCH_MAX = 1000;

/**
 * A {@link ScheduledBatch} record's `tasks` stay under this many bytes (a fire's pair is about 100 bytes, up to 430
 * with 200-character ids): the records of one transaction spread over the topic's partitions as the per-fire events
 * did, so no partition's share of a produce request nears a broker's 1 MiB `message.max.bytes`.
 */
export const SCHEDULED_BATCH_MAX_BYTES = 64 * 1024;

const isScheduledBatch = new Ajv({ strict: true }).compile<ScheduledBatch>({
  type: 'object',
  required: ['v', 'status', 'at', 'by', 'tasks'],
  properties: {
    v: { type: 'integer', const: 1 },
    status: { type: 'string', const: 'SCHEDULED' },
    at: { type: 'string' },
    by: eventSchema.properties.by,
    tasks: {
      type: 'array',
      items: {
        type: 'array',
        minItems: 2,
        maxItems: 2,
        items: [
          { type: 'string', minLength: 1 },
          { type: 'string', minLength: 1 },
        ],
      },
    },
  },
});

/**
 * The records of the SCHEDULED events of fires that share `at` and `by`: one {@link ScheduledBatch} per
 * {@link SCHEDULED_BATCH_MAX} fires or {@link SCHEDULED_BATCH_MAX_BYTES}, each keyed by the taskId of its first fire
 * (so they spread over the partitions). `byJson` is `by` as JSON, `at` a `Date#toISOString` text; `tasks` holds the
 * JSON texts of each fire's taskId and schedule Id.
 */
export function scheduledBatchRecords(
  at: string,
  byJson: string,
  tasks: ReadonlyArray<readonly [string, string]>,
): OutRecord[] {
  const out: OutRecord[] = [];
  const record = (from: number, to: number, items: string): void => {
    out.push({
      topic: EVENTS_TOPIC,
      key: JSON.parse(tasks[from]![0]) as string,
      value: `{"v":1,"status":"SCHEDULED","at":"${at}","by":${byJson},"tasks":[${items}]}`,
      headers: { [SCHEDULED_BATCH_HEADER]: String(to - from) },
    });
  };
  let from = 0;
  let items = '';
  let bytes = 0;
  for (let i = 0; i < tasks.length; i++) {
    const [taskIdJson, scheduleIdJson] = tasks[i]!;
    const item = `[${taskIdJson},${scheduleIdJson}]`;
    // Its UTF-8 bytes, with the comma before it.
    const size = Buffer.byteLength(item) + 1;
    if (i > from && (i - from >= SCHEDULED_BATCH_MAX || bytes + size > SCHEDULED_BATCH_MAX_BYTES)) {
      record(from, i, items);
      from = i;
      items = '';
      bytes = 0;
    }
    items = items === '' ? item : `${items},${item}`;
    bytes += size;
  }
  if (tasks.length > from) record(from, tasks.length, items);
  return out;
}

/**
 * The status events of a `taskmanager.events` record: its one event, or each fire of a {@link ScheduledBatch} as
 * the SCHEDULED event it stands for (what {@link scheduledEvent} gives), or none (an audit event of older versions,
 * anything unreadable: events are advisory). `headers`, when given, saves parsing what is neither.
 */
export function parseStatusEvents(value: Buffer | null, headers?: Readonly<RecordHeaders>): StatusEvent[] {
  const saysBatch = headers?.[SCHEDULED_BATCH_HEADER] !== undefined;
  // With headers a record says what it is: a batch, a status event (`task-id`), or neither (skipped unparsed).
  if (headers && !saysBatch && headers[TASK_ID_HEADER] === undefined) return [];
  const data = parseValidJson(value, (_data): _data is unknown => true);
  if (isScheduledBatch(data)) {
    if (headers && !saysBatch) return [];
    return data.tasks.map(([taskId, scheduleId]) => scheduledEvent({ taskId, scheduleId }, data.at, data.by));
  }
  return isStatusEvent(data) && !saysBatch ? [data] : [];
}
