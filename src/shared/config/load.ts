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
import { scheduleFileSchema } from './schema.js';
import type { RawScheduleEntry, ScheduleEntry } from './schema.js';
import { taskTopicProblem } from './topic-name.js';

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validateShape = ajv.compile<RawScheduleEntry[]>(scheduleFileSchema);

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

/** An entry's schedule fields under the model's names (`Every` → `every`), as written. */
function scheduleFieldsOf(e: unknown): ScheduleFields {
  if (e === null || typeof e !== 'object') return {};
  return Object.fromEntries(SCHEDULE_FIELDS.map((f) => [f, (e as Record<string, unknown>)[fileKey(f)]]));
}

/**
 * Checks the schema cannot express: the schedule model's (in its words for a file), unique Ids, task topics. They
 * run on every field of the right type, even in entries with shape errors elsewhere, so one run lists every problem.
 */
function semanticProblems(file: string, data: unknown): ConfigProblem[] {
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
    const topic = str(e, 'Topic');
    const topicProblem = topic === undefined ? undefined : taskTopicProblem(topic);
    if (topicProblem)
      problems.push({ ...at, path: 'Topic', message: `${JSON.stringify(topic)}: ${topicProblem}` });
  });
  return problems;
}

function normalize(e: RawScheduleEntry, index: number): ScheduleEntry {
  const t = e.TaskMessageTemplate;
  return deepFreeze({
    id: e.Id,
    // File entries count their intervals from the Unix epoch: every instance of a group agrees, and `Every: 10s`
    // fires on the tens of seconds.
    spec: specOf({ cron: e.Cron, runAt: e.RunAt, every: e.Every }, 0),
    topic: e.Topic,
    ...optionsOf(scheduleFieldsOf(e) as Partial<ScheduleOptions>, 'UTC'),
    enabled: e.Enabled ?? true,
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
