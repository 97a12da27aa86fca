import { Ajv } from 'ajv';
import type { JSONSchemaType } from 'ajv';
import { AppError } from '../errors.js';
import type { OutRecord, RecordHeaders } from '../kafka/types.js';
import type { Origin } from '../messages.js';
import type { OverlapPolicy } from '../schedule/model.js';
import { ALERTS_OPTION_SCHEMA } from '../schedule/alerts.js';
import type { AlertsOption } from '../schedule/alerts.js';

/**
 * The task message of docs/messages-and-topics.md#task-message, one per fire: its type, its headers, the typed encoder and the decoder
 * every consumer uses, and the scheduler's fast path ({@link preEncodeTask}, {@link fastTaskValue}), which gives
 * byte for byte what {@link encodeTaskMessage} gives for the same task.
 */

/** The task message's version: its `v` field and `schema-version` header. */
const SCHEMA_VERSION = 1;

/** The scheduler group and process that fired a task. */
export type SchedulerOrigin = Origin & { group: string };

export interface TaskMessage {
  v: 1;
  taskId: string;
  scheduleId: string;
  processor: string;
  param?: string;
  payload?: unknown;
  /**
   * The schedule's overlap policy, when not `queue` (docs/messages-and-topics.md#task-message): what the consumer
   * does when a run of the same schedule is still running or waiting. Added in 1.x without a version change, like
   * `jitteredFor`; the record's `overlap` header says the same, so a consumer routes the record before decoding it.
   */
  overlap?: Exclude<OverlapPolicy, 'queue'>;
  /**
   * The schedule's alerts, when it has any (docs/messages-and-topics.md#task-message): the consumer raises the
   * `failed`, `skipped` and `overrun` alerts of the run from them. Added in 1.x without a version change. Without
   * `deadlineSeconds`, which only the scheduler acts on (`consumerAlerts`).
   */
  alerts?: AlertsOption;
  scheduledFor: string;
  /**
   * When the fire was due, for a schedule with jitter: `scheduledFor` (the nominal instant, the taskId's) plus the
   * schedule's delay for this taskId. Added in 1.x without a version change: absent in older messages and for
   * schedules without jitter, and readers must accept both (docs/messages-and-topics.md#task-message).
   */
  jitteredFor?: string;
  firedAt: string;
  scheduler: SchedulerOrigin;
}

/** What a task message takes from its schedule entry or task definition. */
export interface TaskFields {
  scheduleId: string;
  processor: string;
  param?: string;
  payload?: unknown;
  overlap?: OverlapPolicy;
  alerts?: AlertsOption;
}

/** The overlap policy a task message carries: none for the default, `queue`. */
function overlapOf(fields: TaskFields): Exclude<OverlapPolicy, 'queue'> | undefined {
  return fields.overlap === 'queue' ? undefined : fields.overlap;
}

/** `1@2026-11-22T10:00:05.000Z`: deterministic, so every component can de-duplicate on it. */
export function taskIdFor(scheduleId: string, scheduledForMs: number): string {
  return `${scheduleId}@${new Date(scheduledForMs).toISOString()}`;
}

/**
 * The scheduled instant of a manual fire (a trigger): now, moved off a whole second so its taskId is never that of
 * a spec instant (specs have whole-second precision).
 */
export function manualFireInstant(nowMs: number): number {
  return nowMs % 1000 === 0 ? nowMs + 1 : nowMs;
}

/**
 * The task message of one fire of `fields` at `scheduledForMs`, fired at `firedAtMs` by `scheduler`; `dueAtMs`: when
 * it was due, given for a schedule with jitter.
 */
export function taskMessageOf(
  fields: TaskFields,
  scheduledForMs: number,
  firedAtMs: number,
  scheduler: SchedulerOrigin,
  dueAtMs?: number,
): TaskMessage {
  return {
    v: 1,
    taskId: taskIdFor(fields.scheduleId, scheduledForMs),
    scheduleId: fields.scheduleId,
    processor: fields.processor,
    ...(fields.param === undefined ? {} : { param: fields.param }),
    ...(fields.payload === undefined ? {} : { payload: fields.payload }),
    ...(overlapOf(fields) === undefined ? {} : { overlap: overlapOf(fields) }),
    ...(fields.alerts === undefined ? {} : { alerts: fields.alerts }),
    scheduledFor: new Date(scheduledForMs).toISOString(),
    ...(dueAtMs === undefined ? {} : { jitteredFor: new Date(dueAtMs).toISOString() }),
    firedAt: new Date(firedAtMs).toISOString(),
    scheduler,
  };
}

/** The headers of a task record: its ids, so a consumer can route and log it without decoding the value. */
function taskHeadersOf(
  taskId: string,
  scheduleId: string,
  scheduledFor: string,
  overlap: TaskMessage['overlap'],
): RecordHeaders {
  return {
    'task-id': taskId,
    'schedule-id': scheduleId,
    'scheduled-for': scheduledFor,
    'content-type': 'application/json',
    'schema-version': String(SCHEMA_VERSION),
    ...(overlap === undefined ? {} : { [OVERLAP_HEADER]: overlap }),
  };
}

/** The header holding a task's overlap policy when it is not `queue`. */
export const OVERLAP_HEADER = 'overlap';

/** The typed encoder: the record value of a task message. */
export function encodeTaskMessage(task: TaskMessage): string {
  return JSON.stringify(task);
}

/** A task message as a record of the task topic `topic` (key = schedule Id), with its headers. */
export function taskRecord(topic: string, task: TaskMessage): OutRecord {
  return taskRecordOf(topic, task, encodeTaskMessage(task));
}

/** The record of the task message `ids` whose value is `value` (encoded by this module). */
export function taskRecordOf(
  topic: string,
  ids: Pick<TaskMessage, 'taskId' | 'scheduleId' | 'scheduledFor' | 'overlap'>,
  value: string,
): OutRecord {
  return {
    topic,
    key: ids.scheduleId,
    value,
    headers: taskHeadersOf(ids.taskId, ids.scheduleId, ids.scheduledFor, ids.overlap),
  };
}

/** What never changes between two fires of one entry, serialized once (the scheduler keeps it per entry). */
export interface PreEncodedTask {
  scheduleId: string;
  /** The schedule Id as JSON. */
  idJson: string;
  /** `"scheduleId":…,"processor":…` plus param, payload, overlap and alerts when set. */
  middle: string;
  overlap?: TaskMessage['overlap'];
}

export function preEncodeTask(fields: TaskFields): PreEncodedTask {
  const idJson = JSON.stringify(fields.scheduleId);
  const rest = JSON.stringify({
    processor: fields.processor,
    ...(fields.param === undefined ? {} : { param: fields.param }),
    ...(fields.payload === undefined ? {} : { payload: fields.payload }),
    ...(overlapOf(fields) === undefined ? {} : { overlap: overlapOf(fields) }),
    ...(fields.alerts === undefined ? {} : { alerts: fields.alerts }),
  });
  const overlap = overlapOf(fields);
  return {
    scheduleId: fields.scheduleId,
    idJson,
    middle: `"scheduleId":${idJson},${rest.slice(1, -1)}`,
    ...(overlap === undefined ? {} : { overlap }),
  };
}

/**
 * The fast path of {@link encodeTaskMessage}: the same bytes, concatenated from the parts that never change.
 * `scheduledFor`, `firedAt` and `jitteredFor` (when given) are `Date#toISOString` texts (nothing in them needs
 * escaping), `taskIdJson` the taskId as JSON, `schedulerJson` the scheduler origin as JSON.
 */
export function fastTaskValue(
  pre: PreEncodedTask,
  taskIdJson: string,
  scheduledFor: string,
  firedAt: string,
  schedulerJson: string,
  jitteredFor?: string,
): string {
  const jittered = jitteredFor === undefined ? '' : `"jitteredFor":"${jitteredFor}",`;
  return (
    `{"v":${SCHEMA_VERSION},"taskId":${taskIdJson},${pre.middle},"scheduledFor":"${scheduledFor}",${jittered}` +
    `"firedAt":"${firedAt}","scheduler":${schedulerJson}}`
  );
}

const originSchema = {
  type: 'object',
  required: ['host', 'pid', 'group'],
  properties: {
    host: { type: 'string' },
    pid: { type: 'integer' },
    group: { type: 'string' },
  },
} as const;

/** The fields a task message and its status events begin with. */
export const taskIdsSchema = {
  v: { type: 'integer', const: 1 },
  taskId: { type: 'string', minLength: 1 },
  scheduleId: { type: 'string', minLength: 1 },
} as const;

const taskMessageSchema: JSONSchemaType<TaskMessage> = {
  type: 'object',
  required: ['v', 'taskId', 'scheduleId', 'processor', 'scheduledFor', 'firedAt', 'scheduler'],
  properties: {
    ...taskIdsSchema,
    processor: { type: 'string', minLength: 1 },
    param: { type: 'string', nullable: true },
    payload: {} as JSONSchemaType<TaskMessage>['properties']['payload'],
    overlap: { type: 'string', enum: ['skip', 'replace', 'allow'], nullable: true },
    alerts: {
      ...ALERTS_OPTION_SCHEMA,
      nullable: true,
    } as unknown as JSONSchemaType<TaskMessage>['properties']['alerts'],
    scheduledFor: { type: 'string', format: 'date-time' },
    jitteredFor: { type: 'string', format: 'date-time', nullable: true },
    firedAt: { type: 'string', format: 'date-time' },
    scheduler: originSchema as unknown as JSONSchemaType<TaskMessage>['properties']['scheduler'],
  },
};

const ajv = new Ajv({ allErrors: true, strict: true });
// A minimal RFC 3339 check: what `Date#toISOString` and other producers emit; full ajv-formats is not needed.
ajv.addFormat('date-time', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
const validateTask = ajv.compile(taskMessageSchema);

/** A task record that cannot become a task; goes to the DLQ as `decode-error`. */
export class DecodeError extends AppError {
  constructor(message: string) {
    super('DECODE_ERROR', message, { retriable: false });
  }
}

/** Parse, don't cast: bytes from Kafka become a TaskMessage or a {@link DecodeError} saying why. */
export function decodeTaskMessage(value: Buffer | null): TaskMessage {
  if (value === null || value.length === 0) throw new DecodeError('empty record value');
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(value));
  } catch (err) {
    const preview = value.subarray(0, 40).toString('hex');
    throw new DecodeError(
      `value is not UTF-8 JSON (${err instanceof Error ? err.message : String(err)}; first bytes 0x${preview})`,
    );
  }
  if (!validateTask(data)) {
    const why = (validateTask.errors ?? [])
      .map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}`)
      .join('; ');
    throw new DecodeError(`not a task message v1: ${why}`);
  }
  return data;
}
