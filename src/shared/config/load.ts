import { readFile } from 'node:fs/promises';
import { Ajv } from 'ajv';
import type { ErrorObject } from 'ajv';
import { ConfigError } from '../errors.js';
import type { ConfigProblem } from '../errors.js';
import { problemPath, problemText } from '../schedule/messages.js';
import {
  fileKey,
  optionProblems,
  optionsOf,
  SCHEDULE_FIELDS,
  specOf,
  whenProblems,
} from '../schedule/model.js';
import type { ScheduleFields, ScheduleOptions, ScheduleProblem } from '../schedule/model.js';
import {
  calendarDateProblems,
  CALENDAR_DATES_SCHEMA,
  CALENDAR_NAME_PATTERN,
  excludedDaysOf,
} from '../schedule/calendar.js';
import type { ExcludedDays } from '../schedule/calendar.js';
import { scheduleFileSchema } from './schema.js';
import type { RawScheduleEntry, ScheduleEntry } from './schema.js';
import { taskTopicProblem } from './topic-name.js';
import { ALERTS_OPTION_SCHEMA } from '../schedule/alerts.js';
import type { AlertsOption } from '../schedule/alerts.js';

// verbose: an error carries its schema, so a value matching none of an anyOf's forms is named by the anyOf's description.
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true });
const validateShape = ajv.compile<RawScheduleEntry[]>(scheduleFileSchema);

/**
 * A file with sections: `Schedules` (the entries), `Calendars` (name → dates) and `Alerts` (the alerts of every entry
 * without its own). A file that is a bare array of entries (the old Go tool's, and every file before calendars) has
 * neither.
 */
const sectionsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['Schedules'],
  properties: {
    Calendars: {
      type: 'object',
      propertyNames: { type: 'string', pattern: CALENDAR_NAME_PATTERN },
      additionalProperties: CALENDAR_DATES_SCHEMA,
    },
    Schedules: { type: 'array' },
    Alerts: ALERTS_OPTION_SCHEMA,
  },
} as const;
const validateSections = ajv.compile<{
  Calendars?: Record<string, string[]>;
  Schedules: unknown[];
  Alerts?: AlertsOption;
}>(sectionsSchema);

/** The calendars of a file by name (dates as written). */
type FileCalendars = ReadonlyMap<string, readonly string[]>;

/** A file's entries (unchecked), calendars and default alerts, with the problems of its sections and calendars. */
function sectionsOf(
  file: string,
  data: unknown,
): { entries: unknown; calendars: FileCalendars; alerts?: AlertsOption; problems: ConfigProblem[] } {
  if (Array.isArray(data)) return { entries: data, calendars: new Map(), problems: [] };
  if (data === null || typeof data !== 'object')
    return {
      entries: [],
      calendars: new Map(),
      problems: [
        {
          file,
          path: '',
          message: 'must be an array of entries, or an object with Schedules (and Calendars)',
        },
      ],
    };
  const problems: ConfigProblem[] = validateSections(data)
    ? []
    : oneErrorPerAnyOf(validateSections.errors ?? []).map((e) => {
        const d = describeAjvError(e);
        const at = e.instancePath.split('/').slice(1).join('.');
        const path = [at, d.path].filter(Boolean).join('.');
        return { file, path, message: e.keyword === 'propertyNames' ? 'is not a calendar name' : d.message };
      });
  const raw = (data as Record<string, unknown>).Calendars;
  const calendars = new Map<string, readonly string[]>();
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw))
    for (const [name, dates] of Object.entries(raw as Record<string, unknown>)) {
      if (!Array.isArray(dates)) continue;
      for (const p of calendarDateProblems(dates))
        if (typeof p.value === 'string')
          problems.push({
            file,
            path: `Calendars.${name}.${p.index}`,
            message: `${JSON.stringify(p.value)} ${p.reason}`,
          });
      calendars.set(name, dates as string[]);
    }
  const entries = (data as Record<string, unknown>).Schedules;
  const alerts = (data as Record<string, unknown>).Alerts as AlertsOption | undefined;
  return {
    entries: Array.isArray(entries) ? entries : [],
    calendars,
    problems,
    ...(alerts ? { alerts } : {}),
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** `/0/TaskMessageTemplate/TaskProcessorName` → index 0, path `TaskMessageTemplate.TaskProcessorName`. */
function splitPointer(pointer: string): { index?: number; path: string } {
  const parts = pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (parts.length === 0) return { path: '' };
  const index = Number(parts[0]);
  return { index: Number.isInteger(index) ? index : undefined, path: parts.slice(1).join('.') };
}

function describeAjvError(e: ErrorObject): { path: string; message: string } {
  switch (e.keyword) {
    case 'required':
      return { path: String(e.params.missingProperty), message: 'is required' };
    case 'additionalProperties':
      return { path: String(e.params.additionalProperty), message: 'is not a known field' };
    case 'enum':
      return { path: '', message: `must be one of ${(e.params.allowedValues as unknown[]).join(', ')}` };
    case 'anyOf': {
      const description = (e.parentSchema as { description?: unknown } | undefined)?.description;
      return {
        path: '',
        message: typeof description === 'string' ? `must be ${description}` : (e.message ?? 'anyOf'),
      };
    }
    default:
      return { path: '', message: e.message ?? e.keyword };
  }
}

/** The errors of a value matching none of an anyOf's forms, as one: the anyOf's (not one per form). */
function oneErrorPerAnyOf(errors: readonly ErrorObject[]): ErrorObject[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf').map((e) => `${e.schemaPath}/`);
  return errors.filter((e) => !unions.some((u) => e.schemaPath.startsWith(u)));
}

function idOf(data: unknown, index: number | undefined): string | undefined {
  if (index === undefined || !Array.isArray(data)) return undefined;
  const entry: unknown = data[index];
  if (entry && typeof entry === 'object' && 'Id' in entry && typeof entry.Id === 'string') return entry.Id;
  return undefined;
}

function shapeProblems(file: string, data: unknown): ConfigProblem[] {
  if (validateShape(data)) return [];
  return oneErrorPerAnyOf(validateShape.errors ?? []).map((e) => {
    const at = splitPointer(e.instancePath);
    const d = describeAjvError(e);
    const path = [at.path, d.path].filter(Boolean).join('.');
    return { file, index: at.index, id: idOf(data, at.index), path, message: d.message };
  });
}

function str(entry: unknown, field: string): string | undefined {
  if (entry === null || typeof entry !== 'object') return undefined;
  const v = (entry as Record<string, unknown>)[field];
  return typeof v === 'string' ? v : undefined;
}

/** Each schedule field's model name and file name, worked out once (a file may hold 100,000 entries). */
const SCHEDULE_FILE_KEYS = SCHEDULE_FIELDS.map((f) => [f, fileKey(f)] as const);

/** An entry's schedule fields under the model's names (`Every` → `every`), as written. */
function scheduleFieldsOf(e: unknown): ScheduleFields {
  const out: Record<string, unknown> = {};
  if (e === null || typeof e !== 'object') return out;
  for (const [f, key] of SCHEDULE_FILE_KEYS) out[f] = (e as Record<string, unknown>)[key];
  return out;
}

/**
 * Checks the schema cannot express: the schedule model's (in its words for a file), unique Ids, task topics. They
 * run on every field of the right type, even in entries with shape errors elsewhere, so one run lists every problem.
 */
function semanticProblems(file: string, data: unknown, calendars: FileCalendars): ConfigProblem[] {
  if (!Array.isArray(data)) return [];
  const problems: ConfigProblem[] = [];
  const firstIndexOfId = new Map<string, number>();
  data.forEach((e: unknown, index) => {
    const id = str(e, 'Id');
    const at = { file, index, id };
    const fromModel = (p: ScheduleProblem): ConfigProblem => ({
      ...at,
      path: problemPath(p, 'file'),
      message: problemText(p, 'file'),
    });
    const fields = scheduleFieldsOf(e);
    problems.push(...whenProblems(fields).map(fromModel));
    if (id !== undefined) {
      const seen = firstIndexOfId.get(id);
      if (seen === undefined) firstIndexOfId.set(id, index);
      else problems.push({ ...at, path: 'Id', message: `duplicate Id, already used by entry [${seen}]` });
    }
    problems.push(...optionProblems(fields).map(fromModel));
    if (Array.isArray(fields.calendars))
      for (const name of fields.calendars)
        if (typeof name === 'string' && !calendars.has(name))
          problems.push({ ...at, path: 'Calendars', message: unknownCalendar(name, calendars) });
    const topic = str(e, 'Topic');
    const topicProblem = topic === undefined ? undefined : taskTopicProblem(topic);
    if (topicProblem)
      problems.push({ ...at, path: 'Topic', message: `${JSON.stringify(topic)}: ${topicProblem}` });
  });
  return problems;
}

/** An entry naming a calendar the file does not define. */
function unknownCalendar(name: string, calendars: FileCalendars): string {
  const known = [...calendars.keys()];
  return `${JSON.stringify(name)} is not a calendar of this file (${
    known.length === 0 ? 'it has no Calendars section' : `its Calendars are ${known.join(', ')}`
  })`;
}

/** The excluded days of each set of calendar names entries use, made once per set: entries share them. */
function calendarResolver(
  calendars: FileCalendars,
): (names: readonly string[] | undefined) => ExcludedDays | undefined {
  const made = new Map<string, ExcludedDays>();
  return (names) => {
    if (names === undefined || names.length === 0) return undefined;
    const key = names.join('\u0000');
    let days = made.get(key);
    if (!days)
      made.set(
        key,
        (days = excludedDaysOf(names.map((name) => ({ name, dates: calendars.get(name) ?? [] })))),
      );
    return days;
  };
}

function normalize(
  e: RawScheduleEntry,
  index: number,
  excludedOf: (names: readonly string[] | undefined) => ExcludedDays | undefined,
  defaultAlerts: AlertsOption | undefined,
): ScheduleEntry {
  const t = e.TaskMessageTemplate;
  const excluded = excludedOf(e.Calendars);
  const alerts = e.Alerts ?? defaultAlerts;
  return deepFreeze({
    id: e.Id,
    // File entries count their intervals from the Unix epoch: every instance of a group agrees, and `Every: 10s`
    // fires on the tens of seconds.
    spec: specOf({ cron: e.Cron, runAt: e.RunAt, every: e.Every }, 0),
    topic: e.Topic,
    ...optionsOf(scheduleFieldsOf(e) as Partial<ScheduleOptions>, 'UTC'),
    // The file's `Alerts` section holds for every entry without its own.
    ...(alerts ? { alerts: structuredClone(alerts) } : {}),
    enabled: e.Enabled ?? true,
    misfireWindowSeconds: e.MisfireWindowSeconds ?? 3600,
    processor: t.TaskProcessorName,
    ...(t.TaskParam === undefined ? {} : { param: t.TaskParam }),
    ...(t.Payload === undefined ? {} : { payload: structuredClone(t.Payload) }),
    index,
    ...(excluded ? { excluded } : {}),
  });
}

/** Line and column of a character offset, for JSON syntax errors. */
function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`;
}

/** Parses and validates schedule file text; throws one {@link ConfigError} listing every problem. */
export function parseScheduleText(file: string, text: string): readonly ScheduleEntry[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    const pos = /position (\d+)/.exec(msg);
    const where = pos ? ` at ${lineCol(text, Number(pos[1]))}` : '';
    throw new ConfigError([{ file, path: '', message: `malformed JSON${where}: ${msg}` }]);
  }
  const sections = sectionsOf(file, data);
  const { entries, calendars, alerts } = sections;
  const problems = [
    ...sections.problems,
    ...shapeProblems(file, entries),
    ...semanticProblems(file, entries, calendars),
  ];
  if (problems.length > 0) {
    // Stable sort: by entry, then in the order found (shape first).
    problems.sort((a, b) => (a.index ?? -1) - (b.index ?? -1));
    throw new ConfigError(problems);
  }
  const excludedOf = calendarResolver(calendars);
  return Object.freeze((entries as RawScheduleEntry[]).map((e, i) => normalize(e, i, excludedOf, alerts)));
}

/** Reads, validates and normalizes a schedule file. Throws {@link ConfigError} (every problem at once). */
export async function loadScheduleFile(file: string): Promise<readonly ScheduleEntry[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? String(err)})`;
    throw new ConfigError([{ file, path: '', message: why }]);
  }
  return parseScheduleText(file, text);
}
