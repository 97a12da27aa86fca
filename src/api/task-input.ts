import { randomUUID } from 'node:crypto';
import { Ajv } from 'ajv';
import type { ErrorObject } from 'ajv';
import { parseDuration } from '../shared/duration.js';
import { parseRfc3339 } from '../shared/rfc3339.js';
import { problemPath, problemText } from '../shared/schedule/messages.js';
import {
  everyProblem,
  nestedScheduleProblems,
  OPTION_SCHEMAS,
  optionsOf,
  SCHEDULE_SCHEMA,
} from '../shared/schedule/model.js';
import type { ScheduleOptions, ScheduleProblem, TaskSchedule } from '../shared/schedule/model.js';
import { MAX_EVERY_MS } from '../shared/schedule/spec.js';
import { keepFinishedProblem } from '../shared/tasks/definition.js';
import type { TaskDefinition } from '../shared/tasks/definition.js';

/** One thing wrong with a request: where (a JSON pointer into the body or query) and what. */
export interface FieldError {
  pointer: string;
  detail: string;
}

/** Ids are Kafka keys, URL segments and parts of taskIds (`id@instant`): no `@`, `/` or control characters. */
export const ID_PATTERN = '^[A-Za-z0-9._:-]{1,200}$';

/** Our request body (POST /api/v1/tasks, PUT /api/v1/tasks/{id}). */
export interface TaskInput extends Partial<ScheduleOptions> {
  id?: string;
  name?: string;
  processor: string;
  topic?: string;
  param?: string;
  payload?: unknown;
  schedule: TaskSchedule;
  enabled?: boolean;
  group?: string;
  keepFinished?: string;
}

/** The body of the `/api/v1/tasks` service we replace: `name` is the processor. */
export interface LegacyV1Input {
  name: string;
  type: 'once' | 'recurring';
  /** recurring: the interval; once: the delay before it runs (none: at once). */
  period?: string | number;
  payload?: unknown;
}

/** The body of the `/api/tasks` service we replace: one-shot tasks, `task_type` is the processor. */
export interface LegacyTaskInput {
  task_type: string;
  payload?: unknown;
  /** RFC 3339; none: at once. */
  run_at?: string;
}

export type TaskPatch = Partial<Omit<TaskInput, 'id'>>;

const common = {
  name: { type: 'string', maxLength: 500 },
  processor: { type: 'string', minLength: 1, maxLength: 200, examples: ['InvoiceProcessor', 'email'] },
  topic: {
    type: 'string',
    minLength: 1,
    maxLength: 249,
    description:
      'One of the task topics taskapi allows (--task-topics, default taskTopic, and --topic); 400 otherwise. Default: --topic (taskTopic)',
  },
  param: { type: 'string', maxLength: 10000 },
  payload: {
    description:
      'Any JSON, passed to the processor: at most --max-payload bytes as JSON (64 KiB by default; 413 above). Lists leave it out.',
  },
  schedule: SCHEDULE_SCHEMA,
  ...OPTION_SCHEMAS,
  enabled: { type: 'boolean' },
  group: { type: 'string', minLength: 1, maxLength: 200, description: 'Scheduler group that fires it' },
  keepFinished: {
    type: 'string',
    examples: ['24h', '30m'],
    description:
      'One-shot (runAt) tasks only: the task is removed this long after its run ended (FINISHED, or dead-lettered for good). Default: taskapi --keep-finished (24h). Ignored if the task is later changed to a recurring schedule',
  },
} as const;

export const TASK_INPUT_SCHEMA = {
  title: 'TaskInput',
  type: 'object',
  additionalProperties: false,
  required: ['processor', 'schedule'],
  properties: { id: { type: 'string', pattern: ID_PATTERN }, ...common },
} as const;

export const TASK_PATCH_SCHEMA = {
  title: 'TaskPatch',
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: common,
} as const;

export const LEGACY_V1_SCHEMA = {
  title: 'LegacyV1TaskInput',
  description: 'The request body of the task service we replace (name = processor).',
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    type: { type: 'string', enum: ['once', 'recurring'] },
    period: { type: ['string', 'integer'], examples: ['5s'] },
    payload: common.payload,
  },
} as const;

export const LEGACY_TASK_SCHEMA = {
  title: 'LegacyTaskInput',
  description: 'The request body of the one-shot task service we replace (task_type = processor).',
  type: 'object',
  additionalProperties: false,
  required: ['task_type'],
  properties: {
    task_type: { type: 'string', minLength: 1, maxLength: 200 },
    payload: common.payload,
    run_at: { type: 'string', format: 'date-time', examples: ['2026-02-20T10:00:00Z'] },
  },
} as const;

/** Our schema or the old service's: told apart by the old one's `type` field. */
export const CREATE_BODY_SCHEMA = { oneOf: [TASK_INPUT_SCHEMA, LEGACY_V1_SCHEMA] } as const;

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
// The shape of an RFC 3339 instant; parseRfc3339 then checks the calendar (no 30 February).
ajv.addFormat('date-time', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i);
const compiled = {
  input: ajv.compile<TaskInput>(TASK_INPUT_SCHEMA),
  patch: ajv.compile<TaskPatch>(TASK_PATCH_SCHEMA),
  legacyV1: ajv.compile<LegacyV1Input>(LEGACY_V1_SCHEMA),
  legacyTask: ajv.compile<LegacyTaskInput>(LEGACY_TASK_SCHEMA),
};

/** ajv's errors as field errors, one per problem, with a pointer to the field itself. */
export function fieldErrors(errors: readonly ErrorObject[] | null | undefined): FieldError[] {
  const out: FieldError[] = [];
  for (const e of errors ?? []) {
    // oneOf explains itself through its branches' errors; its own line adds nothing.
    if (e.keyword === 'oneOf' && out.length > 0) continue;
    // Every date-time field gets a clearer message from the checks after the schema (semanticErrors).
    if (e.keyword === 'format') continue;
    const p = e.params as { additionalProperty?: string; missingProperty?: string };
    if (e.keyword === 'additionalProperties' && p.additionalProperty !== undefined)
      out.push({ pointer: `${e.instancePath}/${p.additionalProperty}`, detail: 'is not a known field' });
    else if (e.keyword === 'required' && p.missingProperty !== undefined)
      out.push({ pointer: `${e.instancePath}/${p.missingProperty}`, detail: 'is required' });
    else if (e.keyword === 'enum')
      out.push({
        pointer: e.instancePath || '/',
        detail: `must be one of ${((e.params as { allowedValues?: unknown[] }).allowedValues ?? []).join(', ')}`,
      });
    else out.push({ pointer: e.instancePath || '/', detail: e.message ?? e.keyword });
  }
  return dedupe(out);
}

function dedupe(errors: FieldError[]): FieldError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const k = `${e.pointer} ${e.detail}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** A parse's answer: the value, or every error (refused with 400, or 413 when the payload is over its limit). */
export type Parsed<T> = { ok: true; value: T } | { ok: false; errors: FieldError[]; status?: 413 };

/** A schedule model's problem as a field error: its pointer (or `at`, for a field of an old body) and detail. */
function fieldError(p: ScheduleProblem, at?: string): FieldError {
  return { pointer: at ?? problemPath(p, 'http'), detail: problemText(p, 'http') };
}

/**
 * The schedule and zone, checked by the schedule model: a oneOf's branch errors ("runAt is required" for a body
 * that has cron) would only confuse, so `check` replaces the schema's errors under /schedule by these.
 */
function semanticErrors(b: { schedule?: unknown; timeZone?: unknown; keepFinished?: unknown }): FieldError[] {
  const errors = nestedScheduleProblems(b).map((p) => fieldError(p));
  if (b.keepFinished === undefined) return errors;
  const problem = keepFinishedProblem(b.keepFinished);
  if (problem) errors.push({ pointer: '/keepFinished', detail: problem });
  else if (b.schedule !== null && typeof b.schedule === 'object' && !('runAt' in b.schedule))
    errors.push({
      pointer: '/keepFinished',
      detail: 'applies to one-shot tasks (schedule.runAt) only: recurring tasks are never removed',
    });
  return errors;
}

function check<T>(
  validate: ((d: unknown) => d is T) & { errors?: ErrorObject[] | null },
  body: unknown,
  extra: (b: T) => FieldError[],
): Parsed<T> {
  const schemaOk = validate(body);
  const errors = fieldErrors(validate.errors).filter(
    (e) => !e.pointer.startsWith('/schedule/') && !(e.pointer === '/schedule' && e.detail !== 'is required'),
  );
  // Semantic checks run even when the schema failed elsewhere, so one answer lists every problem.
  if (body !== null && typeof body === 'object') errors.push(...extra(body as T));
  if (schemaOk && errors.length === 0) return { ok: true, value: body };
  // Never a refusal without its reason: should the hand-written checks miss what the schema saw, say the latter.
  if (errors.length === 0) errors.push(...fieldErrors(validate.errors));
  return { ok: false, errors: dedupe(errors) };
}

/** A body parser from a plain JSON schema (every error at once, unknown fields refused by the schema). */
export function parserOf<T>(schema: object): (body: unknown) => Parsed<T> {
  const validate = ajv.compile<T>(schema);
  return (body) => check(validate, body, () => []);
}

/** Largest task payload by default, in bytes of its JSON (`taskapi --max-payload`). */
export const DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024;

/**
 * `parse` with a cap on the body's `payload`, measured as the JSON stored in the task record: above `maxBytes` the
 * body is refused with 413, the payload's size and the limit named (beside any other error of the body). Lists of
 * 1000 tasks then stay within 1000 × the limit, and a payload no processor needs cannot fill the tasks topic.
 */
export function payloadLimited<T>(
  parse: (body: unknown) => Parsed<T>,
  maxBytes: number,
): (body: unknown) => Parsed<T> {
  return (body) => {
    const r = parse(body);
    const payload =
      body !== null && typeof body === 'object' ? (body as { payload?: unknown }).payload : undefined;
    const bytes = payload === undefined ? 0 : Buffer.byteLength(JSON.stringify(payload));
    if (bytes <= maxBytes) return r;
    const tooLarge: FieldError = {
      pointer: '/payload',
      detail: `is ${bytes} bytes as JSON, over the limit of ${maxBytes} bytes (taskapi --max-payload)`,
    };
    return { ok: false, status: 413, errors: [tooLarge, ...(r.ok ? [] : r.errors)] };
  };
}

export function isLegacyV1Body(body: unknown): boolean {
  return body !== null && typeof body === 'object' && 'type' in body && !('schedule' in body);
}

export function parseTaskInput(body: unknown): Parsed<TaskInput> {
  return check(compiled.input, body, semanticErrors);
}

export function parseTaskPatch(body: unknown): Parsed<TaskPatch> {
  return check(compiled.patch, body, semanticErrors);
}

export function parseLegacyV1(body: unknown): Parsed<LegacyV1Input> {
  return check(compiled.legacyV1, body, (b) => {
    if (b.period === undefined)
      return b.type === 'recurring'
        ? [{ pointer: '/period', detail: 'is required for a recurring task' }]
        : [];
    if (typeof b.period !== 'string' && typeof b.period !== 'number') return [];
    const problem = everyProblem(b.period);
    // A one-shot's period is a delay: any duration up to the maximum will do, 0 included.
    const delay = parseDuration(b.period);
    if (!problem || (b.type === 'once' && delay !== undefined && delay <= MAX_EVERY_MS)) return [];
    return [fieldError(problem, '/period')];
  });
}

export function parseLegacyTask(body: unknown): Parsed<LegacyTaskInput> {
  return check(compiled.legacyTask, body, (b) =>
    typeof b.run_at === 'string' && parseRfc3339(b.run_at) === undefined
      ? [{ pointer: '/run_at', detail: 'is not an RFC 3339 instant like 2026-02-20T10:00:00Z' }]
      : [],
  );
}

/** Defaults a definition takes from the instance when the request leaves them out. */
export interface InputDefaults {
  topic: string;
  group: string;
  timeZone: string;
}

/** A new definition (or a full replacement of `existing`, keeping its id, creation time and creator). */
export function definitionFromInput(
  input: TaskInput,
  d: InputDefaults,
  nowMs: number,
  existing?: TaskDefinition,
): TaskDefinition {
  const now = new Date(nowMs).toISOString();
  return {
    v: 1,
    id: existing?.id ?? input.id ?? randomUUID(),
    name: input.name ?? input.processor,
    processor: input.processor,
    topic: input.topic ?? d.topic,
    ...(input.param === undefined ? {} : { param: input.param }),
    ...(input.payload === undefined ? {} : { payload: input.payload }),
    schedule: input.schedule,
    ...optionsOf(input, d.timeZone),
    enabled: input.enabled ?? true,
    group: input.group ?? existing?.group ?? d.group,
    createdAt: existing?.createdAt ?? now,
    updatedAt: now,
    ...(existing?.createdBy === undefined ? {} : { createdBy: existing.createdBy }),
    ...(input.keepFinished === undefined ? {} : { keepFinished: input.keepFinished }),
  };
}

export function applyPatch(def: TaskDefinition, patch: TaskPatch, nowMs: number): TaskDefinition {
  return { ...def, ...patch, v: 1, updatedAt: new Date(nowMs).toISOString() } as TaskDefinition;
}

export function inputOfLegacyV1(b: LegacyV1Input, nowMs: number): TaskInput {
  const periodMs = b.period === undefined ? 0 : (parseDuration(b.period) ?? 0);
  const schedule: TaskSchedule =
    b.type === 'recurring'
      ? { every: b.period ?? periodMs }
      : { runAt: new Date(nowMs + periodMs).toISOString() };
  return {
    name: b.name,
    processor: b.name,
    schedule,
    ...(b.payload === undefined ? {} : { payload: b.payload }),
  };
}

export function inputOfLegacyTask(b: LegacyTaskInput, nowMs: number): TaskInput {
  return {
    name: b.task_type,
    processor: b.task_type,
    schedule: { runAt: b.run_at ?? new Date(nowMs).toISOString() },
    ...(b.payload === undefined ? {} : { payload: b.payload }),
  };
}
