import { CronSpecError, isValidTimeZone, validateCronSpec } from '../cron.js';
import { formatDuration, parseDuration } from '../duration.js';
import { parseRfc3339 } from '../rfc3339.js';
import { ALERTS_OPTION_SCHEMA } from './alerts.js';
import type { AlertsOption } from './alerts.js';
import { CALENDARS_OPTION_SCHEMA } from './calendar.js';
import { MAX_EVERY_MS, MIN_EVERY_MS } from './spec.js';
import type { ScheduleSpec } from './spec.js';

/**
 * The one schedule model: the schedule file (`config/`), the readers of `taskmanager.tasks` (`tasks/definition.ts`)
 * and taskapi (`api/task-input.ts`, and through it the OpenAPI document) take their schedule types, schemas and
 * checks from here, and their messages from `messages.ts`. Names are canonical (camelCase); the file writes the
 * same names PascalCase ({@link fileKey}). A new schedule option is added to {@link ScheduleOptions},
 * {@link OPTION_SCHEMAS} and {@link OPTION_DEFAULTS}, its rules (when a schema cannot express them) to
 * {@link optionProblems} and their words to `messages.ts`: the file, the records, taskapi's bodies, answers and
 * OpenAPI document then all take it alike.
 */

export type MisfirePolicy = 'skip' | 'fire-once' | 'fire-all';
export const MISFIRE_POLICIES: readonly MisfirePolicy[] = ['skip', 'fire-once', 'fire-all'];

/**
 * What a consumer does with a run of a schedule whose previous run is still running or waiting (Kubernetes'
 * concurrencyPolicy, Temporal's overlap policies): `queue` runs it after (the default), `skip` ends it SKIPPED,
 * `replace` cancels the previous one and runs it, `allow` runs it beside (docs/schedule-file.md#overlap).
 */
export type OverlapPolicy = 'queue' | 'skip' | 'replace' | 'allow';
export const OVERLAP_POLICIES: readonly OverlapPolicy[] = ['queue', 'skip', 'replace', 'allow'];

/** The shortest and longest interval, as messages and the OpenAPI document state them: `1s`, `87600h (10 years)`. */
export const MIN_EVERY_TEXT = formatDuration(MIN_EVERY_MS);
export const MAX_EVERY_TEXT = `${formatDuration(MAX_EVERY_MS)} (${MAX_EVERY_MS / (365 * 24 * 3_600_000)} years)`;

/** The kinds of schedule; a schedule has exactly one. */
export const SCHEDULE_KINDS = ['runAt', 'cron', 'every'] as const;
export type ScheduleKind = (typeof SCHEDULE_KINDS)[number];

/** When a task fires, as HTTP bodies and task records nest it: exactly one kind (docs/http-api.md#routes-with-curl). */
export type TaskSchedule = { runAt: string } | { cron: string } | { every: string | number };

/**
 * A schedule's options beside its kind. The file writes them PascalCase (`TimeZone`). Records written before an
 * option existed lack it: a new one is optional here, and its default in {@link OPTION_DEFAULTS}.
 */
export interface ScheduleOptions {
  /** IANA zone of cron specs. */
  timeZone: string;
  /** What a scheduler does with fire times it missed while no instance ran. */
  misfire: MisfirePolicy;
  /**
   * Seconds: each fire is delayed by a deterministic function of its taskId, in [0, jitter) and below the gap to the
   * next instant (`jitter.ts`). Absent or 0: no delay. The file names it `JitterSeconds`.
   */
  jitter?: number;
  /** RFC 3339: no instant before it fires (BullMQ's startDate). */
  startAt?: string;
  /** RFC 3339: no instant after it fires; past it the schedule has ended (BullMQ's endDate). */
  endAt?: string;
  /** How many fires of the spec, at most (manual triggers not counted); then the schedule has ended (BullMQ's limit). */
  maxRuns?: number;
  /**
   * Exclusion calendars by name (`calendar.ts`): no instant whose local date, in `timeZone`, one of them holds fires.
   * The names are resolved by the door the schedule came through: the file's `Calendars` section, taskapi's
   * `/api/v1/calendars`.
   */
  calendars?: string[];
  /** What a run does when the schedule's previous run is still running or waiting. Absent: `queue`. */
  overlap?: OverlapPolicy;
  /** Which runs raise an alert and where it is delivered (`alerts.ts`). The file names it `Alerts`. */
  alerts?: AlertsOption;
}

/** The longest jitter, in seconds (a day): a longer delay would spread nothing a day's schedules do not. */
export const MAX_JITTER_SECONDS = 86_400;

/** The defaults of options a schedule leaves out, but the zone's (UTC in a file, `--time-zone` in taskapi). */
export const OPTION_DEFAULTS: Omit<ScheduleOptions, 'timeZone'> = { misfire: 'fire-once' };

/** A schedule's options (picked from `given`, which may hold other fields), defaults filled in. */
export function optionsOf(given: Partial<ScheduleOptions>, zone: string): ScheduleOptions {
  // Keys in the order records have always had them (timeZone, misfire, then newer options).
  const out: Record<string, unknown> = { timeZone: zone, ...OPTION_DEFAULTS };
  for (const f of OPTION_FIELDS) if (given[f] !== undefined) out[f] = given[f];
  return out as unknown as ScheduleOptions;
}

/** File names that are not the canonical name capitalized: the file spells the unit, as `MisfireWindowSeconds`. */
const FILE_NAMES: Readonly<Record<string, string>> = { jitter: 'JitterSeconds' };

/**
 * A schedule's jitter, window and limit as a CLI line shows them, ` (jitter 30s, from <startAt>, until <endAt>,
 * 2/5 runs)`, or '' when none is set; `runCount` unknown (no state at hand): `at most 5 runs`.
 */
export function optionsNote(
  o: Pick<ScheduleOptions, 'jitter' | 'startAt' | 'endAt' | 'maxRuns' | 'calendars' | 'overlap'> & {
    runCount?: number;
  },
): string {
  const parts = [
    ...(o.overlap && o.overlap !== 'queue' ? [`overlap ${o.overlap}`] : []),
    ...(o.calendars?.length ? [`except ${o.calendars.join(', ')}`] : []),
    ...(o.jitter ? [`jitter ${o.jitter}s`] : []),
    ...(o.startAt === undefined ? [] : [`from ${o.startAt}`]),
    ...(o.endAt === undefined ? [] : [`until ${o.endAt}`]),
    ...(o.maxRuns === undefined
      ? []
      : [o.runCount === undefined ? `at most ${o.maxRuns} runs` : `${o.runCount}/${o.maxRuns} runs`]),
  ];
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`;
}

/** `timeZone` → `TimeZone`: the schedule file's name of a canonical field (the old Go tool's convention). */
export function fileKey(field: string): string {
  return FILE_NAMES[field] ?? field.charAt(0).toUpperCase() + field.slice(1);
}

/** A type's fields under their schedule-file names (`{ timeZone?: string }` → `{ TimeZone?: string }`). */
export type InFileKeys<T> = {
  [K in keyof T as K extends 'jitter' ? 'JitterSeconds' : Capitalize<K & string>]: T[K];
};

/**
 * The JSON schema of each kind's value. No length or format limits: the checks after the schema say what is wrong
 * with a value in words (`"5 s" is not a duration …`) rather than ajv's.
 */
export const KIND_SCHEMAS = {
  runAt: {
    type: 'string',
    description: 'Fires once at this RFC 3339 instant (with an offset)',
    examples: ['2026-12-01T09:00:00Z'],
  },
  cron: {
    type: 'string',
    description: '6 fields (seconds first), 5 fields (minute precision) or an @macro, in timeZone',
    examples: ['0 9 * * 1-5', '@daily'],
  },
  every: {
    type: ['string', 'integer'],
    description: `A fixed interval: a duration (5s, 1m30s, 2h) or ms, from ${MIN_EVERY_TEXT} to ${MAX_EVERY_TEXT}`,
    examples: ['5s', '1m30s', 60000],
  },
} as const;

/** The JSON schema of each option. */
export const OPTION_SCHEMAS = {
  timeZone: { type: 'string', minLength: 1, examples: ['UTC', 'Europe/Berlin'] },
  misfire: { type: 'string', enum: [...MISFIRE_POLICIES] },
  jitter: {
    type: 'integer',
    minimum: 0,
    maximum: MAX_JITTER_SECONDS,
    description:
      'Seconds: each fire is delayed by a fixed function of its taskId, in [0, jitter) and below the gap to the next fire; spreads schedules that share a spec. 0 or absent: none',
    examples: [30],
  },
  startAt: {
    type: 'string',
    description: 'RFC 3339 instant with an offset: no fire before it',
    examples: ['2026-12-01T00:00:00Z'],
  },
  endAt: {
    type: 'string',
    description: 'RFC 3339 instant with an offset: no fire after it; past it the schedule has ended',
    examples: ['2026-12-31T23:59:59Z'],
  },
  maxRuns: {
    type: 'integer',
    minimum: 1,
    description:
      'Fires of the schedule at most (triggers not counted), counted across restarts and failover; then it has ended',
    examples: [10],
  },
  calendars: CALENDARS_OPTION_SCHEMA,
  overlap: {
    type: 'string',
    enum: [...OVERLAP_POLICIES],
    description:
      'When a run of this schedule is still running or waiting as the next one comes: queue runs it after (default), skip ends the new one SKIPPED, replace cancels the running one, allow runs both side by side',
    examples: ['skip'],
  },
  alerts: ALERTS_OPTION_SCHEMA,
} as const;

const OPTION_FIELDS = Object.keys(OPTION_SCHEMAS) as Array<keyof ScheduleOptions>;

/** The nested schedule (HTTP bodies, the OpenAPI document): one object per kind. */
export const SCHEDULE_SCHEMA = {
  description: 'Exactly one of runAt (once), cron (5 or 6 fields) or every (a duration like 5s, or ms).',
  oneOf: SCHEDULE_KINDS.map((kind) => ({
    type: 'object',
    additionalProperties: false,
    required: [kind],
    // The date-time format documents runAt; the checks after the schema decide.
    properties: {
      [kind]: kind === 'runAt' ? { ...KIND_SCHEMAS.runAt, format: 'date-time' } : KIND_SCHEMAS[kind],
    },
  })),
};

/** A schedule as stored and answered: one kind, typed, never refused (an answer never fails on a stored task). */
export const STORED_SCHEDULE_SCHEMA = {
  type: 'object',
  properties: Object.fromEntries(SCHEDULE_KINDS.map((k) => [k, { type: KIND_SCHEMAS[k].type }])),
};

/** What is wrong with a schedule; `messages.ts` words it for each door. */
export type ScheduleProblem =
  | { rule: 'not-object' }
  | { rule: 'unknown-field'; name: string }
  | { rule: 'type'; kind: ScheduleKind }
  | { rule: 'kinds'; kinds: readonly ScheduleKind[] }
  | { rule: 'cron'; value: string; reason: string }
  | { rule: 'runAt'; value: string }
  | { rule: 'every-format' | 'every-min' | 'every-max'; value: string | number }
  | { rule: 'timeZone'; value: string }
  | { rule: 'startAt' | 'endAt'; value: string }
  | { rule: 'window'; value: string; startAt: string };

/** Every field of a schedule, canonical names: its kinds, then its options. */
export const SCHEDULE_FIELDS = [...SCHEDULE_KINDS, ...OPTION_FIELDS];

/** A schedule's fields under canonical names, as written (unchecked). */
export type ScheduleFields = Partial<Record<(typeof SCHEDULE_FIELDS)[number], unknown>>;

/** The types each kind's schema gives, as a list (`every`: a string or an integer). */
const KIND_TYPES = Object.fromEntries(
  SCHEDULE_KINDS.map((k) => [k, [KIND_SCHEMAS[k].type].flat() as readonly string[]]),
) as Record<ScheduleKind, readonly string[]>;

/** Whether a kind's value has the type its schema gives (`every`: a string or an integer). */
function hasKindType(s: ScheduleFields, kind: ScheduleKind): boolean {
  const v = s[kind];
  for (const t of KIND_TYPES[kind]) if (t === 'integer' ? Number.isInteger(v) : typeof v === t) return true;
  return false;
}

/** An interval's problem, or none: a duration (or ms) from 1 s to 87600 h (10 years). */
export function everyProblem(every: string | number): ScheduleProblem | undefined {
  const ms = parseDuration(every);
  if (ms === undefined) return { rule: 'every-format', value: every };
  if (ms < MIN_EVERY_MS) return { rule: 'every-min', value: every };
  // The longest interval is the same through every door: one an API refuses never loads from a file either.
  if (ms > MAX_EVERY_MS) return { rule: 'every-max', value: every };
  return undefined;
}

/**
 * The checks of when a schedule fires that a schema cannot make: how many kinds, then each value. A value of the
 * wrong type is the schema's to report (and is skipped here), so one run lists every problem.
 */
export function whenProblems(s: ScheduleFields): ScheduleProblem[] {
  const out: ScheduleProblem[] = [];
  const kinds = SCHEDULE_KINDS.filter((k) => s[k] !== undefined);
  if (kinds.length !== 1) out.push({ rule: 'kinds', kinds });
  if (typeof s.runAt === 'string' && parseRfc3339(s.runAt) === undefined)
    out.push({ rule: 'runAt', value: s.runAt });
  const every = hasKindType(s, 'every') ? everyProblem(s.every as string | number) : undefined;
  if (every) out.push(every);
  if (typeof s.cron === 'string')
    try {
      validateCronSpec(s.cron);
    } catch (err) {
      if (!(err instanceof CronSpecError)) throw err;
      out.push({ rule: 'cron', value: s.cron, reason: err.message });
    }
  return out;
}

/**
 * The checks of the options a schema cannot make: a zone that is not an IANA zone, a start or end that is not an
 * RFC 3339 instant, an end before the start.
 */
export function optionProblems(o: Partial<Record<keyof ScheduleOptions, unknown>>): ScheduleProblem[] {
  const out: ScheduleProblem[] = [];
  const zone = o.timeZone;
  if (typeof zone === 'string' && !isValidTimeZone(zone)) out.push({ rule: 'timeZone', value: zone });
  const at = (field: 'startAt' | 'endAt'): number | undefined => {
    const v = o[field];
    if (typeof v !== 'string') return undefined;
    const ms = parseRfc3339(v);
    if (ms === undefined) out.push({ rule: field, value: v });
    return ms;
  };
  const start = at('startAt');
  const end = at('endAt');
  if (start !== undefined && end !== undefined && end < start)
    out.push({ rule: 'window', value: o.endAt as string, startAt: o.startAt as string });
  return out;
}

/** The active window of a schedule's options, as epoch ms (unbounded ends: ±Infinity). */
export function windowOf(o: Pick<ScheduleOptions, 'startAt' | 'endAt'>): { startMs: number; endMs: number } {
  const ms = (v: string | undefined, none: number): number =>
    v === undefined ? none : (parseRfc3339(v) ?? none);
  return { startMs: ms(o.startAt, -Infinity), endMs: ms(o.endAt, Infinity) };
}

/**
 * The checks of a nested schedule (HTTP bodies, task records): `schedule` an object whose only fields are kinds,
 * each of its type, then {@link whenProblems}, then the options beside it. Without `schedule` (a PATCH that keeps
 * it), only the options.
 */
export function nestedScheduleProblems(
  b: { schedule?: unknown } & Partial<Record<keyof ScheduleOptions, unknown>>,
): ScheduleProblem[] {
  const zone = optionProblems(b);
  if (!('schedule' in b)) return zone;
  const s = b.schedule;
  if (s === null || typeof s !== 'object' || Array.isArray(s)) return [{ rule: 'not-object' }, ...zone];
  const fields = s as Record<string, unknown>;
  const out: ScheduleProblem[] = Object.keys(fields)
    .filter((k) => !(SCHEDULE_KINDS as readonly string[]).includes(k))
    .map((name) => ({ rule: 'unknown-field', name }));
  for (const kind of SCHEDULE_KINDS)
    if (kind in fields && !hasKindType(fields, kind)) out.push({ rule: 'type', kind });
  return [...out, ...whenProblems(fields), ...zone];
}

/** The spec of a schedule the checks above passed. `every` counts its intervals from `anchorMs`. */
export function specOf(
  s: { runAt?: string; cron?: string; every?: string | number },
  anchorMs: number,
): ScheduleSpec {
  if (s.runAt !== undefined) return { kind: 'once', runAt: parseRfc3339(s.runAt) ?? NaN };
  if (s.every !== undefined) return { kind: 'every', everyMs: parseDuration(s.every) ?? NaN, anchorMs };
  return { kind: 'cron', cron: (s.cron ?? '').trim() };
}
