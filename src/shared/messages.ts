import { Ajv } from 'ajv';
import type { JSONSchemaType } from 'ajv';
import { AppError } from './errors.js';

export const SCHEMA_VERSION = 1;
export const EVENTS_TOPIC = 'taskmanager.events';
export const SCHEDULER_STATE_TOPIC = 'taskmanager.scheduler-state';
export const COMMANDS_TOPIC = 'taskmanager.commands';

/** Who produced a message or event. */
export interface Origin {
  host: string;
  pid: number;
}

/** The task message of docs/messages-and-topics.md#task-message: one per fire. */
export interface TaskMessage {
  v: 1;
  taskId: string;
  scheduleId: string;
  processor: string;
  param?: string;
  payload?: unknown;
  scheduledFor: string;
  firedAt: string;
  scheduler: Origin & { group: string };
}

/** `REPLAYED`: an operator re-published the task from the DLQ to its topic. */
export type TaskStatus = 'SCHEDULED' | 'EXECUTING' | 'FINISHED' | 'FAILED' | 'REPLAYED';

/** A status event on `taskmanager.events`, keyed by taskId. */
export interface StatusEvent {
  v: 1;
  taskId: string;
  scheduleId: string;
  status: TaskStatus;
  at: string;
  attempt: number;
  by: Origin & { role: 'scheduler' | 'consumer' | 'api' | 'operator' };
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

export type DlqReason = 'decode-error' | 'unknown-processor' | 'non-retriable' | 'attempts-exhausted';

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

export type Headers = Record<string, string>;

export function taskHeaders(task: TaskMessage): Headers {
  return taskHeadersOf(task.taskId, task.scheduleId, task.scheduledFor);
}

export function taskHeadersOf(taskId: string, scheduleId: string, scheduledFor: string): Headers {
  return {
    'task-id': taskId,
    'schedule-id': scheduleId,
    'scheduled-for': scheduledFor,
    'content-type': 'application/json',
    'schema-version': String(SCHEMA_VERSION),
  };
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

const taskMessageSchema: JSONSchemaType<TaskMessage> = {
  type: 'object',
  required: ['v', 'taskId', 'scheduleId', 'processor', 'scheduledFor', 'firedAt', 'scheduler'],
  properties: {
    v: { type: 'integer', const: 1 },
    taskId: { type: 'string', minLength: 1 },
    scheduleId: { type: 'string', minLength: 1 },
    processor: { type: 'string', minLength: 1 },
    param: { type: 'string', nullable: true },
    payload: {} as JSONSchemaType<TaskMessage>['properties']['payload'],
    scheduledFor: { type: 'string', format: 'date-time' },
    firedAt: { type: 'string', format: 'date-time' },
    scheduler: originSchema as unknown as JSONSchemaType<TaskMessage>['properties']['scheduler'],
  },
};

const eventSchema = {
  type: 'object',
  required: ['v', 'taskId', 'scheduleId', 'status', 'at', 'attempt', 'by'],
  properties: {
    v: { type: 'integer', const: 1 },
    taskId: { type: 'string', minLength: 1 },
    scheduleId: { type: 'string', minLength: 1 },
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

const ajv = new Ajv({ allErrors: true, strict: true });
const isStatusEvent = ajv.compile<StatusEvent>(eventSchema);

/** A `taskmanager.events` record value as an event, or undefined when it is none (events are advisory). */
export function parseStatusEvent(value: Buffer | null): StatusEvent | undefined {
  if (value === null) return undefined;
  try {
    const data: unknown = JSON.parse(value.toString('utf8'));
    return isStatusEvent(data) ? data : undefined;
  } catch {
    return undefined;
  }
}

// A minimal RFC 3339 check: what `Date#toISOString` and other producers emit; full ajv-formats is not needed.
ajv.addFormat('date-time', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
const validateTask = ajv.compile(taskMessageSchema);

/** A task record that cannot become a task; goes to the DLQ as `decode-error`. */
export class DecodeError extends AppError {
  constructor(message: string) {
    super('DECODE_ERROR', message, { retriable: false });
  }
}

export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
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
