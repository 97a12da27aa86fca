import { readFile } from 'node:fs/promises';
import { Ajv } from 'ajv';
import type { ErrorObject } from 'ajv';
import { ConfigError } from '../errors.js';
import type { ConfigProblem } from '../errors.js';
import { CronSpecError, isValidTimeZone, validateCronSpec } from '../cron.js';
import { parseDuration } from '../duration.js';
import { parseRfc3339 } from '../rfc3339.js';
import { MIN_EVERY_MS } from '../schedule/spec.js';
import type { ScheduleSpec } from '../schedule/spec.js';
import { scheduleFileSchema } from './schema.js';
import type { RawScheduleEntry, ScheduleEntry } from './schema.js';
import { taskTopicProblem } from './topic-name.js';

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: false });
const validateShape = ajv.compile(scheduleFileSchema);

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
    default:
      return { path: '', message: e.message ?? e.keyword };
  }
}

function idOf(data: unknown, index: number | undefined): string | undefined {
  if (index === undefined || !Array.isArray(data)) return undefined;
  const entry: unknown = data[index];
  if (entry && typeof entry === 'object' && 'Id' in entry && typeof entry.Id === 'string') return entry.Id;
  return undefined;
}

function shapeProblems(file: string, data: unknown): ConfigProblem[] {
  if (validateShape(data)) return [];
  return (validateShape.errors ?? []).map((e) => {
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

/**
 * Checks the schema cannot express. They run on every field of the right type, even in entries with shape
 * errors elsewhere, so one run lists every problem in the file.
 */
function semanticProblems(file: string, data: unknown): ConfigProblem[] {
  if (!Array.isArray(data)) return [];
  const problems: ConfigProblem[] = [];
  const firstIndexOfId = new Map<string, number>();
  data.forEach((e: unknown, index) => {
    const id = str(e, 'Id');
    const at = { file, index, id };
    const kinds = (['Cron', 'RunAt', 'Every'] as const).filter(
      (k) => e !== null && typeof e === 'object' && (e as Record<string, unknown>)[k] !== undefined,
    );
    if (kinds.length !== 1)
      problems.push({
        ...at,
        path: kinds.length === 0 ? 'Cron' : kinds.join(', '),
        message: `needs exactly one of Cron, RunAt and Every (it has ${kinds.length === 0 ? 'none' : kinds.join(' and ')})`,
      });
    const runAt = str(e, 'RunAt');
    if (runAt !== undefined && parseRfc3339(runAt) === undefined)
      problems.push({
        ...at,
        path: 'RunAt',
        message: `${JSON.stringify(runAt)} is not an RFC 3339 date-time with an offset (e.g. 2026-12-01T09:00:00Z)`,
      });
    const every = str(e, 'Every');
    if (every !== undefined) {
      const ms = parseDuration(every);
      if (ms === undefined)
        problems.push({
          ...at,
          path: 'Every',
          message: `${JSON.stringify(every)} is not a duration like 5s, 1m30s, 2h or 1500 (ms)`,
        });
      else if (ms < MIN_EVERY_MS)
        problems.push({
          ...at,
          path: 'Every',
          message: `${JSON.stringify(every)} is below the minimum of 1s`,
        });
    }
    const cron = str(e, 'Cron');
    if (cron !== undefined) {
      try {
        validateCronSpec(cron);
      } catch (err) {
        if (!(err instanceof CronSpecError)) throw err;
        problems.push({ ...at, path: 'Cron', message: `${JSON.stringify(cron)}: ${err.message}` });
      }
    }
    if (id !== undefined) {
      const seen = firstIndexOfId.get(id);
      if (seen === undefined) firstIndexOfId.set(id, index);
      else problems.push({ ...at, path: 'Id', message: `duplicate Id, already used by entry [${seen}]` });
    }
    const zone = str(e, 'TimeZone');
    if (zone !== undefined && !isValidTimeZone(zone)) {
      problems.push({ ...at, path: 'TimeZone', message: `${JSON.stringify(zone)} is not an IANA time zone` });
    }
    const topic = str(e, 'Topic');
    const topicProblem = topic === undefined ? undefined : taskTopicProblem(topic);
    if (topicProblem)
      problems.push({ ...at, path: 'Topic', message: `${JSON.stringify(topic)}: ${topicProblem}` });
  });
  return problems;
}

/** The entry's schedule; the checks above guarantee exactly one kind, well formed. */
function specOf(e: RawScheduleEntry): ScheduleSpec {
  if (e.RunAt !== undefined) return { kind: 'once', runAt: parseRfc3339(e.RunAt) ?? NaN };
  // File entries count their intervals from the Unix epoch: every instance of a group agrees, and `Every: 10s`
  // fires on the tens of seconds.
  if (e.Every !== undefined) return { kind: 'every', everyMs: parseDuration(e.Every) ?? NaN, anchorMs: 0 };
  return { kind: 'cron', cron: (e.Cron ?? '').trim() };
}

function normalize(e: RawScheduleEntry, index: number): ScheduleEntry {
  const t = e.TaskMessageTemplate;
  return deepFreeze({
    id: e.Id,
    spec: specOf(e),
    topic: e.Topic,
    timeZone: e.TimeZone ?? 'UTC',
    enabled: e.Enabled ?? true,
    misfire: e.Misfire ?? 'fire-once',
    misfireWindowSeconds: e.MisfireWindowSeconds ?? 3600,
    processor: t.TaskProcessorName,
    ...(t.TaskParam === undefined ? {} : { param: t.TaskParam }),
    ...(t.Payload === undefined ? {} : { payload: structuredClone(t.Payload) }),
    index,
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
  const problems = [...shapeProblems(file, data), ...semanticProblems(file, data)];
  if (problems.length > 0) {
    // Stable sort: by entry, then in the order found (shape first).
    problems.sort((a, b) => (a.index ?? -1) - (b.index ?? -1));
    throw new ConfigError(problems);
  }
  return Object.freeze((data as RawScheduleEntry[]).map(normalize));
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
