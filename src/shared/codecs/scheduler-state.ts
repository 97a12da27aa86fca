import { createHash } from 'node:crypto';
import { Ajv } from 'ajv';
import type { JSONSchemaType } from 'ajv';
import type { ScheduleEntry } from '../config/schema.js';
import type { OutRecord } from '../kafka/types.js';

/**
 * The records of `taskmanager.scheduler-state` (docs/messages-and-topics.md#scheduler-state): per scheduler group and entry, the last
 * instant fired, whether it is paused, and a hash of its definition; and the deadline timers of runs whose schedule has
 * `deadlineSeconds` ({@link DeadlineTimer}). The scheduler's fast path,
 * {@link fastStateValue}, gives byte for byte what {@link encodeState} gives for the same fields.
 */

export const SCHEDULER_STATE_TOPIC = 'taskmanager.scheduler-state';

/** The value of a `taskmanager.scheduler-state` record, key `<group>/<schedule Id>`. */
export interface StateRecord {
  v: 1;
  /** The last instant fired (ISO); an instant at or before it is never fired again. */
  lastFiredAt: string;
  /** Hash of the entry's definition, to warn when instances of a group run different files. */
  specHash: string;
  updatedAt: string;
  /** Set by `taskscheduler pause`: no instant fires until `resume` (missed ones are not caught up). */
  paused?: boolean;
  /** Who paused or resumed it last (`user@host` of the CLI). */
  changedBy?: string;
  /**
   * Entries with `MaxRuns`: how many fires of the spec there have been (triggers not counted). Optional in v1: a
   * record without it (older versions, entries without MaxRuns) counts as 0 runs.
   */
  runs?: number;
}

const schema: JSONSchemaType<StateRecord> = {
  type: 'object',
  required: ['v', 'lastFiredAt', 'specHash', 'updatedAt'],
  properties: {
    v: { type: 'integer', const: 1 },
    lastFiredAt: { type: 'string' },
    specHash: { type: 'string' },
    updatedAt: { type: 'string' },
    paused: { type: 'boolean', nullable: true },
    changedBy: { type: 'string', nullable: true },
    runs: { type: 'integer', minimum: 0, nullable: true },
  },
};
const validate = new Ajv({ strict: true }).compile(schema);

export function stateKey(group: string, id: string): string {
  return `${group}/${id}`;
}

const hashes = new WeakMap<ScheduleEntry, string>();

/** `specHash` remembered per entry object (entries are immutable once loaded). */
export function specHashOf(e: ScheduleEntry): string {
  let h = hashes.get(e);
  if (h === undefined) hashes.set(e, (h = specHash(e)));
  return h;
}

/**
 * What makes two entries fire the same tasks: spec, zone, topic, processor, param, payload, and jitter, window,
 * limit and calendars (names and the dates they exclude) when set (only then, so the hash of an entry without them
 * is what it was before they existed).
 */
export function specHash(e: ScheduleEntry): string {
  const canonical = JSON.stringify([
    e.spec.kind === 'cron' ? e.spec.cron : e.spec,
    e.timeZone,
    e.topic,
    e.processor,
    e.param ?? null,
    e.payload ?? null,
    ...(e.jitter || e.startAt || e.endAt || e.maxRuns
      ? [{ jitter: e.jitter, startAt: e.startAt, endAt: e.endAt, maxRuns: e.maxRuns }]
      : []),
    ...(e.calendars?.length ? [{ calendars: e.calendars, excluded: e.excluded?.ranges ?? [] }] : []),
  ]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** What the scheduler keeps per entry from the state topic. */
export interface EntryState {
  lastFiredMs: number;
  specHash: string;
  paused: boolean;
  /** Fires counted for MaxRuns (0 when the record has none). */
  runs: number;
}

/** Parses a state record value; `undefined` for a tombstone or a record this version cannot read. */
export function parseState(value: Buffer | null): EntryState | undefined {
  if (value === null) return undefined;
  try {
    const data: unknown = JSON.parse(value.toString('utf8'));
    if (!validate(data)) return undefined;
    const ms = Date.parse(data.lastFiredAt);
    return Number.isFinite(ms)
      ? { lastFiredMs: ms, specHash: data.specHash, paused: data.paused === true, runs: data.runs ?? 0 }
      : undefined;
  } catch {
    return undefined;
  }
}

/** The typed encoder. */
export function encodeState(value: StateRecord): string {
  return JSON.stringify(value);
}

/**
 * The state record of entry `e` after a fire of `lastFiredMs` (no pause fields); `runs` for an entry with MaxRuns
 * (see {@link runsOf}).
 */
export function firedState(
  e: ScheduleEntry,
  lastFiredMs: number,
  updatedMs: number,
  runs?: number,
): StateRecord {
  return {
    v: 1,
    lastFiredAt: new Date(lastFiredMs).toISOString(),
    specHash: specHashOf(e),
    updatedAt: new Date(updatedMs).toISOString(),
    ...(runs === undefined ? {} : { runs }),
  };
}

/**
 * The run count a state record of `e` carries: only entries with MaxRuns count, so that the records of every other
 * entry stay byte for byte what they were before the count existed.
 */
export function runsOf(e: ScheduleEntry, runs: number): number | undefined {
  return e.maxRuns === undefined ? undefined : runs;
}

/** A state record of entry `id` of `group`, on the state partition its key maps to (`partition`). */
export function stateRecord(group: string, id: string, partition: number, value: string): OutRecord {
  return { topic: SCHEDULER_STATE_TOPIC, key: stateKey(group, id), value, partition };
}

/**
 * The fast path of {@link encodeState} for {@link firedState}: the same bytes. `lastFiredAt` and `updatedAt` are
 * `Date#toISOString` texts, `specHash` a hex string (nothing in them needs escaping).
 */
export function fastStateValue(
  lastFiredAt: string,
  specHash: string,
  updatedAt: string,
  runs?: number,
): string {
  const counted = runs === undefined ? '' : `,"runs":${runs}`;
  return `{"v":1,"lastFiredAt":"${lastFiredAt}","specHash":"${specHash}","updatedAt":"${updatedAt}"${counted}}`;
}

/** The state record that pauses or resumes an entry (written by its owner, in a transaction). */
export function pauseStateValue(
  e: ScheduleEntry,
  lastFiredMs: number,
  paused: boolean,
  nowMs: number,
  changedBy: string,
  runs = 0,
): string {
  return encodeState({ ...firedState(e, lastFiredMs, nowMs, runsOf(e, runs)), paused, changedBy });
}

/**
 * The key prefix of a deadline timer of `group`: `<group>/deadline/<taskId>`. A reader that only knows entry records
 * takes it for the state of an entry `deadline/<taskId>`, finds no `lastFiredAt` in its value, and skips it; the
 * state record of an entry whose id does begin with `deadline/` still reads as one (a timer's value has
 * `kind: deadline`, an entry state's has not).
 */
export function deadlineKeyPrefix(group: string): string {
  return `${group}/deadline/`;
}

/**
 * A deadline timer (docs/messages-and-topics.md#scheduler-state), key `<group>/deadline/<taskId>`, on the state
 * partition of its entry: armed in the transaction of the fire, deleted (tombstone) in the transaction that raises
 * its `deadline` alert, or once the run FINISHED in time.
 */
export interface DeadlineTimer {
  v: 1;
  kind: 'deadline';
  taskId: string;
  scheduleId: string;
  /** The run's instant (ISO). */
  scheduledFor: string;
  /** When it fired (ISO): its events are on `taskmanager.events` from then on. */
  firedAt: string;
  /** Its instant plus `deadlineSeconds` (ISO). */
  dueAt: string;
  /** The schedule's task topic, where the alert's delivery task goes. */
  topic: string;
  deadlineSeconds: number;
}

const timerSchema: JSONSchemaType<DeadlineTimer> = {
  type: 'object',
  required: [
    'v',
    'kind',
    'taskId',
    'scheduleId',
    'scheduledFor',
    'firedAt',
    'dueAt',
    'topic',
    'deadlineSeconds',
  ],
  properties: {
    v: { type: 'integer', const: 1 },
    kind: { type: 'string', const: 'deadline' },
    taskId: { type: 'string', minLength: 1 },
    scheduleId: { type: 'string', minLength: 1 },
    scheduledFor: { type: 'string' },
    firedAt: { type: 'string' },
    dueAt: { type: 'string' },
    topic: { type: 'string', minLength: 1 },
    deadlineSeconds: { type: 'integer', minimum: 1 },
  },
};
const validateTimer = new Ajv({ strict: true }).compile(timerSchema);

export function deadlineKey(group: string, taskId: string): string {
  return `${deadlineKeyPrefix(group)}${taskId}`;
}

/** Parses a deadline timer value; `undefined` for a tombstone or a value this version cannot read. */
export function parseDeadlineTimer(value: Buffer | null): DeadlineTimer | undefined {
  if (value === null) return undefined;
  try {
    const data: unknown = JSON.parse(value.toString('utf8'));
    return validateTimer(data) &&
      Number.isFinite(Date.parse(data.dueAt)) &&
      Number.isFinite(Date.parse(data.firedAt))
      ? data
      : undefined;
  } catch {
    return undefined;
  }
}

/** The record arming a deadline timer, on state partition `partition`. */
export function deadlineRecord(group: string, partition: number, timer: DeadlineTimer): OutRecord {
  return {
    topic: SCHEDULER_STATE_TOPIC,
    key: deadlineKey(group, timer.taskId),
    value: JSON.stringify(timer),
    partition,
  };
}

/** The tombstone of a deadline timer: its alert was raised, or its run FINISHED in time. */
export function deadlineTombstone(group: string, partition: number, taskId: string): OutRecord {
  return { topic: SCHEDULER_STATE_TOPIC, key: deadlineKey(group, taskId), value: null, partition };
}
