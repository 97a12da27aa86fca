import { Ajv } from 'ajv';
import type { JSONSchemaType } from 'ajv';
import { taskTopicProblem } from '../config/topic-name.js';
import type { ScheduleEntry } from '../config/schema.js';
import { problemLine } from '../schedule/messages.js';
import {
  nestedScheduleProblems,
  OPTION_SCHEMAS,
  optionsOf,
  specOf,
  whenProblems,
} from '../schedule/model.js';
import type { ScheduleOptions, TaskSchedule } from '../schedule/model.js';
import type { ScheduleSpec } from '../schedule/spec.js';
import { parseDuration } from '../duration.js';
import type { InRecord, OutRecord } from '../kafka/types.js';
import type { Logger } from '../logger.js';
import type { CalendarsOf } from './calendars.js';

export type { TaskSchedule } from '../schedule/model.js';

/** The compacted topic of task definitions created over HTTP (key = task id, tombstone = deleted). */
export const TASKS_TOPIC = 'taskmanager.tasks';
/** Kafka's default `delete.retention.ms`: how long a compacted topic keeps a tombstone at least. */
export const DEFAULT_DELETE_RETENTION_MS = 24 * 3600_000;
/**
 * Header of a `taskmanager.tasks` record with a definition: the definition's `group`, so that a scheduler finds a
 * record's state partition without parsing its value (docs/messages-and-topics.md#task-definitions-and-users).
 * Optional: a record without it is parsed.
 */
export const GROUP_HEADER = 'tm-group';
/** The scheduler group that fires API tasks unless a definition names another. */
export const DEFAULT_API_GROUP = 'taskscheduler-api';

/**
 * A task definition as stored in `taskmanager.tasks` (docs/messages-and-topics.md#task-definitions-and-users), without
 * the derived status fields.
 */
export interface TaskDefinition extends ScheduleOptions {
  v: 1;
  id: string;
  name: string;
  processor: string;
  topic: string;
  param?: string;
  payload?: unknown;
  schedule: TaskSchedule;
  enabled: boolean;
  /** Scheduler group that fires it. */
  group: string;
  createdAt: string;
  updatedAt: string;
  createdBy?: string;
  /** Who made the last change (user name, or user name and API token id). */
  updatedBy?: string;
  /**
   * One-shot (runAt) tasks: how long after its run ended (FINISHED, or dead-lettered for good) the task is removed
   * from the topic, as a duration (`24h`); taskapi's `--keep-finished` when absent. Ignored on recurring tasks.
   */
  keepFinished?: string;
}

/** The longest `keepFinished`: a year. */
export const MAX_KEEP_FINISHED_MS = 365 * 24 * 3_600_000;

/** Why `keepFinished` cannot be used, or undefined when it can (a duration from 1 ms to a year). */
export function keepFinishedProblem(keep: unknown): string | undefined {
  const ms = typeof keep === 'string' ? parseDuration(keep) : undefined;
  if (ms !== undefined && ms <= MAX_KEEP_FINISHED_MS) return undefined;
  return `keepFinished ${JSON.stringify(keep)} is not a duration from 1ms to 8760h (a year), like 24h or 30m`;
}

/** The fields every stored definition has, besides `v` (taskapi's answers have them too). */
export const DEFINITION_FIELDS = [
  'id',
  'name',
  'processor',
  'topic',
  'schedule',
  'timeZone',
  'misfire',
  'enabled',
  'group',
  'createdAt',
  'updatedAt',
] as const satisfies ReadonlyArray<keyof TaskDefinition>;

const definitionSchema: JSONSchemaType<TaskDefinition> = {
  type: 'object',
  additionalProperties: false,
  required: ['v', ...DEFINITION_FIELDS],
  properties: {
    v: { type: 'integer', const: 1 },
    id: { type: 'string', minLength: 1, maxLength: 200 },
    name: { type: 'string' },
    processor: { type: 'string', minLength: 1 },
    topic: { type: 'string', minLength: 1 },
    param: { type: 'string', nullable: true },
    payload: {} as JSONSchemaType<TaskDefinition>['properties']['payload'],
    // The schedule model checks the schedule and the options' values after the shape (nestedScheduleProblems).
    schedule: { type: 'object' } as JSONSchemaType<TaskDefinition>['properties']['schedule'],
    ...(OPTION_SCHEMAS as unknown as Pick<
      JSONSchemaType<TaskDefinition>['properties'],
      keyof ScheduleOptions
    >),
    enabled: { type: 'boolean' },
    group: { type: 'string', minLength: 1 },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    createdBy: { type: 'string', nullable: true },
    updatedBy: { type: 'string', nullable: true },
    keepFinished: { type: 'string', nullable: true },
  },
};

const ajv = new Ajv({ strict: true, allowUnionTypes: true });
const validateDefinition = ajv.compile(definitionSchema);

/** Parses a `taskmanager.tasks` record value: the definition, or a reason it cannot be used. */
export function parseDefinition(
  value: Buffer,
): { def: TaskDefinition; spec: ScheduleSpec } | { problem: string } {
  let data: unknown;
  try {
    data = JSON.parse(value.toString('utf8'));
  } catch (err) {
    return { problem: `not JSON (${err instanceof Error ? err.message : String(err)})` };
  }
  if (!validateDefinition(data)) return { problem: ajv.errorsText(validateDefinition.errors) };
  const topicProblem = taskTopicProblem(data.topic);
  if (topicProblem) return { problem: `topic: ${topicProblem}` };
  const [problem] = nestedScheduleProblems(data);
  if (problem) return { problem: problemLine(problem, 'record') };
  const keepProblem = data.keepFinished === undefined ? undefined : keepFinishedProblem(data.keepFinished);
  if (keepProblem) return { problem: keepProblem };
  const spec = checkedSpecOf(data);
  return typeof spec === 'string' ? { problem: spec } : { def: data, spec };
}

/** The schedule spec of a task, or why it has none. `every` counts its intervals from the task's creation. */
export function specOfTask(def: Pick<TaskDefinition, 'schedule' | 'createdAt'>): ScheduleSpec | string {
  const [problem] = whenProblems(def.schedule);
  return problem ? problemLine(problem, 'record') : checkedSpecOf(def);
}

/** The spec of a task whose schedule passed the model's checks; a bad `createdAt` leaves `every` no anchor. */
function checkedSpecOf(def: Pick<TaskDefinition, 'schedule' | 'createdAt'>): ScheduleSpec | string {
  const anchorMs = Date.parse(def.createdAt);
  if ('every' in def.schedule && !Number.isFinite(anchorMs))
    return `createdAt ${JSON.stringify(def.createdAt)} is not a date`;
  return specOf(def.schedule, anchorMs);
}

/**
 * The schedule entry a (valid) task definition fires as; `calendarsOf` resolves the calendars it names (the
 * reader's calendar book, `calendars.ts`), none without it.
 */
export function entryOfTask(
  def: TaskDefinition,
  spec: ScheduleSpec,
  calendarsOf?: CalendarsOf,
): ScheduleEntry {
  const excluded = calendarsOf?.(def.calendars);
  return {
    id: def.id,
    spec,
    topic: interned(def.topic),
    ...optionsOf(def, interned(def.timeZone)),
    enabled: def.enabled,
    misfireWindowSeconds: 3600,
    processor: interned(def.processor),
    ...(def.param === undefined ? {} : { param: def.param }),
    ...(def.payload === undefined ? {} : { payload: def.payload }),
    index: -1,
    source: 'api',
    ...(excluded ? { excluded } : {}),
  };
}

const internedNames = new Map<string, string>();

/**
 * One copy of a name many entries share (their topic, processor, zone) instead of one per parsed record; up to 1,000
 * distinct names are kept.
 */
function interned(name: string): string {
  const known = internedNames.get(name);
  if (known !== undefined) return known;
  if (internedNames.size < 1000) internedNames.set(name, name);
  return name;
}

/**
 * One `taskmanager.tasks` record as every reader takes it: its task id and definition (none for a tombstone), or
 * undefined after one warning line when it cannot be used (no key, not a definition, key not the task's id).
 */
export function readTaskRecord(
  r: InRecord,
  logger: Logger,
): { id: string; def?: TaskDefinition; spec?: ScheduleSpec } | undefined {
  const where = `${TASKS_TOPIC}/${r.partition}@${r.offset}`;
  const id = r.key?.toString('utf8');
  if (!id) {
    logger.warn(`ignoring ${where}: no key (a task's key is its id)`);
    return undefined;
  }
  if (r.value === null) return { id };
  const parsed = parseDefinition(r.value);
  if ('problem' in parsed) {
    logger.warn(`ignoring ${where} (task ${id}): ${parsed.problem}`, { taskId: id });
    return undefined;
  }
  if (parsed.def.id !== id) {
    logger.warn(
      `ignoring ${where}: key ${JSON.stringify(id)} is not the task's id ${JSON.stringify(parsed.def.id)}`,
    );
    return undefined;
  }
  // The definition's id, not the key's copy of it: whoever keeps both keeps one string.
  return { id: parsed.def.id, def: parsed.def, spec: parsed.spec };
}

/**
 * A `taskmanager.tasks` record of a definition as taskapi writes it: key = id, the definition as JSON, its group in
 * {@link GROUP_HEADER}, and `headers` (the write rules' `tm-op`, `tm-base`, …).
 */
export function definitionRecord(def: TaskDefinition, headers: Record<string, string> = {}): OutRecord {
  return {
    topic: TASKS_TOPIC,
    key: def.id,
    value: Buffer.from(JSON.stringify(def)),
    headers: { ...headers, [GROUP_HEADER]: def.group },
  };
}
