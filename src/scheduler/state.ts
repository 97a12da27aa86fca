import { createHash } from 'node:crypto';
import { Ajv } from 'ajv';
import type { JSONSchemaType } from 'ajv';
import type { ScheduleEntry } from '../shared/config/schema.js';

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

/** What makes two entries fire the same tasks: spec, zone, topic, processor, param, payload. */
export function specHash(e: ScheduleEntry): string {
  const canonical = JSON.stringify([
    e.spec.kind === 'cron' ? e.spec.cron : e.spec,
    e.timeZone,
    e.topic,
    e.processor,
    e.param ?? null,
    e.payload ?? null,
  ]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** What the scheduler keeps per entry from the state topic. */
export interface EntryState {
  lastFiredMs: number;
  specHash: string;
  paused: boolean;
}

/** Parses a state record value; `undefined` for a tombstone or a record this version cannot read. */
export function parseState(value: Buffer | null): EntryState | undefined {
  if (value === null) return undefined;
  try {
    const data: unknown = JSON.parse(value.toString('utf8'));
    if (!validate(data)) return undefined;
    const ms = Date.parse(data.lastFiredAt);
    return Number.isFinite(ms)
      ? { lastFiredMs: ms, specHash: data.specHash, paused: data.paused === true }
      : undefined;
  } catch {
    return undefined;
  }
}

/** The state record that pauses or resumes an entry (written by its owner, in a transaction). */
export function pauseStateValue(
  e: ScheduleEntry,
  lastFiredMs: number,
  paused: boolean,
  nowMs: number,
  changedBy: string,
): string {
  const value: StateRecord = {
    v: 1,
    lastFiredAt: new Date(lastFiredMs).toISOString(),
    specHash: specHashOf(e),
    updatedAt: new Date(nowMs).toISOString(),
    paused,
    changedBy,
  };
  return JSON.stringify(value);
}
