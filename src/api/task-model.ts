import { OPTION_SCHEMAS, STORED_SCHEDULE_SCHEMA } from '../shared/schedule/model.js';
import { scheduleTimes } from '../shared/schedule/jitter.js';
import type { JitteredSchedule } from '../shared/schedule/jitter.js';
import type { ScheduleSpec } from '../shared/schedule/spec.js';
import { zonedFormatter } from '../shared/zoned-format.js';
import { DEFINITION_FIELDS, specOfTask } from '../shared/tasks/definition.js';
import type { TaskDefinition } from '../shared/tasks/definition.js';
import type { CalendarsOf } from '../shared/tasks/calendars.js';
import { RUN_STATES } from './run-history.js';
import type { TaskRun } from './run-history.js';

/**
 * A task's status (docs/http-api.md#status): PAUSED when disabled; SCHEDULED until it first fires; then where its
 * latest run stands (QUEUED: published, not started yet; RUNNING, also between retries; FINISHED; FAILED:
 * dead-lettered; CANCELLED: stopped by a cancel request; SKIPPED: not run, its previous run was still going and its
 * overlap policy is `skip`).
 */
export type TaskState =
  'SCHEDULED' | 'QUEUED' | 'RUNNING' | 'FINISHED' | 'FAILED' | 'CANCELLED' | 'SKIPPED' | 'PAUSED';
export const TASK_STATES: readonly TaskState[] = [
  'SCHEDULED',
  'QUEUED',
  'RUNNING',
  'FINISHED',
  'FAILED',
  'CANCELLED',
  'SKIPPED',
  'PAUSED',
];

/** The status words of the task services we replace. */
export type LegacyStatus = 'PENDING' | 'QUEUED' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';
const LEGACY: Record<TaskState, LegacyStatus> = {
  SCHEDULED: 'PENDING',
  PAUSED: 'PENDING',
  QUEUED: 'QUEUED',
  RUNNING: 'RUNNING',
  FINISHED: 'COMPLETED',
  FAILED: 'FAILED',
  CANCELLED: 'CANCELLED',
  // The old services had no word for a run that never ran because another was going: it did not run, as cancelled.
  SKIPPED: 'CANCELLED',
};

export function legacyStatus(s: TaskState): LegacyStatus {
  return LEGACY[s];
}

export function stateOf(def: Pick<TaskDefinition, 'enabled'>, latest: TaskRun | undefined): TaskState {
  if (!def.enabled) return 'PAUSED';
  if (!latest) return 'SCHEDULED';
  if (latest.state === 'RETRYING') return 'RUNNING';
  return latest.state;
}

/** A task as the API shows it: its definition, its version (the ETag) and what its runs say. */
export interface ApiTask extends Omit<TaskDefinition, 'v'> {
  version: string;
  status: TaskState;
  legacyStatus: LegacyStatus;
  lastRun?: TaskRun;
  nextRunAt?: string;
  /** Past its endAt: it fires nothing more (absent otherwise). */
  ended?: boolean;
}

/**
 * The next instant a task fires after `nowMs`; a one-shot that has not run yet is due even when past. `calendarsOf`
 * resolves the calendars it names (taskapi's); without it, they exclude nothing.
 */
export function nextRunOf(
  def: TaskDefinition,
  latest: TaskRun | undefined,
  nowMs: number,
  calendarsOf?: CalendarsOf,
): number | undefined {
  if (!def.enabled) return undefined;
  const spec = specOfTask(def);
  if (typeof spec === 'string') return undefined;
  // A one-shot that has not run is due even when past, unless it is outside its window.
  const times = timesOfTask(def, spec, calendarsOf);
  if (spec.kind === 'once') return latest ? undefined : times.compiled.nextAfter(-Infinity);
  return times.firstDueAfter(-Infinity, nowMs)?.nominal;
}

/** A task's fire times: its spec in its zone, inside its window, off its calendars' dates, with its jitter. */
function timesOfTask(def: TaskDefinition, spec: ScheduleSpec, calendarsOf?: CalendarsOf): JitteredSchedule {
  return scheduleTimes(spec, def, def.id, calendarsOf?.(def.calendars));
}

/** A coming fire, in UTC and in the task's zone (`2026-11-26 02:30:00 CET`). */
export interface NextFire {
  utc: string;
  local: string;
  /** With jitter: when the fire of `utc` (its nominal instant, the taskId's) is due. */
  jitteredFor?: string;
}

/** The next `count` fire instants of a task after `nowMs` (a one-shot that has not run yet: its instant). */
export function nextFires(
  def: TaskDefinition,
  latest: TaskRun | undefined,
  nowMs: number,
  count: number,
  calendarsOf?: CalendarsOf,
): NextFire[] {
  const first = nextRunOf(def, latest, nowMs, calendarsOf);
  if (first === undefined) return [];
  const spec = specOfTask(def);
  if (typeof spec === 'string') return [];
  const times = timesOfTask(def, spec, calendarsOf);
  const fires =
    spec.kind === 'once' ? [{ nominal: first, due: times.dueOf(first) }] : times.nextFires(nowMs, count);
  const local = zonedFormatter(def.timeZone, 'sv-SE', true);
  return fires
    .filter((f) => Math.abs(f.due) <= 8.64e15)
    .slice(0, count)
    .map(({ nominal, due }) => ({
      utc: new Date(nominal).toISOString(),
      local: local.format(new Date(nominal)),
      ...(def.jitter ? { jitteredFor: new Date(due).toISOString() } : {}),
    }));
}

/**
 * Whether an enabled task has ended by its endAt: nothing of its window left to fire. (Its maxRuns count is in the
 * scheduler state, which only its owner instance reads: `/api/v1/schedules` reports that one.)
 */
export function endedByWindow(
  def: TaskDefinition,
  latest: TaskRun | undefined,
  nowMs: number,
  calendarsOf?: CalendarsOf,
): boolean {
  return def.enabled && def.endAt !== undefined && nextRunOf(def, latest, nowMs, calendarsOf) === undefined;
}

export function toApiTask(
  def: TaskDefinition,
  version: string,
  latest: TaskRun | undefined,
  nowMs: number,
  calendarsOf?: CalendarsOf,
): ApiTask {
  const { v: _v, ...rest } = def;
  const status = stateOf(def, latest);
  const next = nextRunOf(def, latest, nowMs, calendarsOf);
  return {
    ...rest,
    version,
    status,
    legacyStatus: legacyStatus(status),
    ...(latest ? { lastRun: latest } : {}),
    ...(endedByWindow(def, latest, nowMs, calendarsOf) ? { ended: true } : {}),
    // A Date holds ±8.64e15 ms; anything beyond (a definition written by hand) shows no next run.
    ...(next === undefined || !(Math.abs(next) <= 8.64e15)
      ? {}
      : { nextRunAt: new Date(next).toISOString() }),
  };
}

// ---- JSON schemas of the responses (fastify serializes with them; the OpenAPI document shows them) ----

export const RUN_SCHEMA = {
  type: 'object',
  required: ['taskId', 'scheduledFor', 'state', 'attempts'],
  properties: {
    taskId: { type: 'string' },
    scheduledFor: { type: 'string' },
    state: { type: 'string', enum: [...RUN_STATES] },
    attempts: { type: 'integer' },
    firedAt: { type: 'string' },
    startedAt: { type: 'string' },
    finishedAt: { type: 'string' },
    durationMs: { type: 'number' },
    error: { type: 'string' },
    dlqReason: { type: 'string' },
    consumer: {
      type: 'object',
      required: ['host', 'pid'],
      properties: { host: { type: 'string' }, pid: { type: 'integer' } },
    },
    replays: { type: 'integer' },
    cancelled: { type: 'string', description: 'On CANCELLED: who asked and why' },
    skipped: {
      type: 'string',
      description: 'On SKIPPED: the run of the same schedule still running or waiting (overlap skip)',
    },
    progress: {
      type: 'object',
      required: ['fraction', 'at'],
      description: 'What the processor of its latest attempt last reported (ctx.progress)',
      properties: {
        fraction: { type: 'number', minimum: 0, maximum: 1 },
        message: { type: 'string' },
        at: { type: 'string' },
      },
    },
  },
} as const;

/** The fields every task response has (ours, and the compatibility ones). */
export const TASK_SCHEMA = {
  type: 'object',
  required: [...DEFINITION_FIELDS, 'version', 'status', 'legacyStatus'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    processor: { type: 'string' },
    topic: { type: 'string' },
    param: { type: 'string' },
    payload: {},
    // As stored: one of runAt, cron, every (no oneOf here: an answer never fails on a definition written by hand).
    schedule: STORED_SCHEDULE_SCHEMA,
    // Answers are serialized with this schema, which drops what it does not name: every option, from the model.
    ...OPTION_SCHEMAS,
    enabled: { type: 'boolean' },
    group: { type: 'string', description: 'The scheduler group that fires it.' },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    createdBy: { type: 'string' },
    keepFinished: {
      type: 'string',
      description: 'One-shot tasks: removed this long after their run ended (none: taskapi --keep-finished).',
    },
    version: { type: 'string', description: 'Changes on every write; sent as the ETag.' },
    status: { type: 'string', enum: [...TASK_STATES] },
    legacyStatus: {
      type: 'string',
      enum: ['PENDING', 'QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'],
    },
    lastRun: RUN_SCHEMA,
    nextRunAt: { type: 'string' },
    ended: {
      type: 'boolean',
      description:
        'true once past its endAt (nothing left to fire); a task at its maxRuns shows state ended in /api/v1/schedules',
    },
  },
} as const;
