import { createHash } from 'node:crypto';
import { Ajv } from 'ajv';
import type { JSONSchemaType } from 'ajv';
import type { ScheduleEntry } from '../config/schema.js';
import type { OutRecord } from '../kafka/types.js';

/**
 * The records of `taskmanager.scheduler-state` (docs/messages-and-topics.md#scheduler-state): per scheduler group and entry, the last
 * instant fired, whether it is paused, and a hash of its definition. The scheduler's fast path,
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
