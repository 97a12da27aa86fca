import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NonRetriableError } from '../shared/errors.js';
import type { TaskMessage } from '../shared/codecs/task-message.js';
import { REDACTED } from '../shared/redacted.js';

/**
 * The only environment variables a task can read: `TASKMANAGER_SECRET_<NAME>`. Anything else in the consumer's
 * environment (Kafka passwords, SMTP_URL, cloud credentials) stays out of reach of `{"$secret": …}`.
 */
export const SECRET_ENV_PREFIX = 'TASKMANAGER_SECRET_';

/** A name that is a file name in the secrets directory (no `/`, no leading `.`) and an environment variable suffix. */
const SECRET_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export interface SecretSourceOptions {
  /** Where `TASKMANAGER_SECRET_<NAME>` is looked up. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** `--secrets-dir`: the file `<dir>/<NAME>` (one trailing newline dropped), when the environment has no such name. */
  dir?: string;
}

/** A task with its references replaced by their values, and the values (to keep them out of what is written). */
export interface ResolvedTask {
  task: TaskMessage;
  values: readonly string[];
}

interface Reference {
  /** Where it stands: `payload.headers.Authorization`. */
  path: string;
  name: unknown;
  /** Whether `$secret` is its only key. */
  alone: boolean;
}

/** An object with a `$secret` key is a reference (`{"$secret": "NAME"}`), well formed or not. */
function referenceOf(v: unknown, path: string): Reference | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, '$secret'))
    return undefined;
  return { path, name: (v as Record<string, unknown>).$secret, alone: Object.keys(v).length === 1 };
}

/**
 * Resolves the secret references of task payloads on the consumer, just before the processor runs: the task in
 * Kafka (and so its DLQ copy and every event) keeps the references. A reference that cannot be resolved fails the
 * task for good, naming the secret and never a value.
 */
export class SecretSource {
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly o: SecretSourceOptions = {}) {
    this.env = o.env ?? process.env;
  }

  /** Whether the task's payload holds a `{"$secret": …}` reference (well formed or not): checked without copying. */
  static refersToSecrets(task: TaskMessage): boolean {
    return hasReference(task.payload);
  }

  async resolve(task: TaskMessage): Promise<ResolvedTask> {
    const refs: Reference[] = [];
    collect(task.payload, 'payload', refs);
    if (refs.length === 0) return { task, values: [] };
    const values = new Map<string, string>();
    for (const { path, name, alone } of refs) {
      if (typeof name !== 'string' || !SECRET_NAME.test(name) || !alone)
        throw new NonRetriableError(
          `task ${task.taskId}: ${path} is not a secret reference: write {"$secret": "NAME"}, NAME of letters, digits, _ . - (up to 128)`,
        );
      if (!values.has(name)) values.set(name, await this.lookup(task.taskId, name, path));
    }
    return {
      task: { ...task, payload: substitute(task.payload, values) },
      values: [...values.values()].filter((v) => v !== ''),
    };
  }

  private async lookup(taskId: string, name: string, path: string): Promise<string> {
    const fromEnv = this.env[`${SECRET_ENV_PREFIX}${name}`];
    if (fromEnv !== undefined) return fromEnv;
    if (this.o.dir !== undefined) {
      try {
        return (await readFile(join(this.o.dir, name), 'utf8')).replace(/\r?\n$/, '');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          throw new NonRetriableError(
            `task ${taskId}: secret ${name} (${path}) cannot be read from ${join(this.o.dir, name)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
          );
      }
    }
    const where = `${SECRET_ENV_PREFIX}${name} in its environment${this.o.dir === undefined ? '' : ` or the file ${join(this.o.dir, name)}`}`;
    throw new NonRetriableError(
      `task ${taskId}: secret ${name} (${path}) is not set on this consumer: set ${where}`,
    );
  }
}

function hasReference(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  if (Array.isArray(v)) return v.some(hasReference);
  if (Object.hasOwn(v, '$secret')) return true;
  for (const k in v) if (Object.hasOwn(v, k) && hasReference((v as Record<string, unknown>)[k])) return true;
  return false;
}

function collect(v: unknown, path: string, out: Reference[]): void {
  const ref = referenceOf(v, path);
  if (ref) out.push(ref);
  else if (Array.isArray(v)) v.forEach((x, i) => collect(x, `${path}[${i}]`, out));
  else if (typeof v === 'object' && v !== null)
    for (const [k, x] of Object.entries(v)) collect(x, `${path}.${k}`, out);
}

function substitute(v: unknown, values: ReadonlyMap<string, string>): unknown {
  const ref = referenceOf(v, '');
  if (ref) return values.get(ref.name as string);
  if (Array.isArray(v)) return v.map((x) => substitute(x, values));
  if (typeof v === 'object' && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substitute(x, values)]));
  return v;
}

/**
 * The forms in which a processor may echo a value: as is, JSON-escaped, URL-encoded, and for a URL the parts the
 * webhook processor reports (origin and path). Longest first, so a longer form is replaced before its parts.
 */
function formsOf(values: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const v of values) {
    forms.add(v);
    forms.add(JSON.stringify(v).slice(1, -1));
    forms.add(encodeURIComponent(v));
    if (URL.canParse(v)) {
      const u = new URL(v);
      if (u.origin !== 'null' && u.pathname.length > 1) forms.add(`${u.origin}${u.pathname}`);
      if (u.password !== '') forms.add(u.password);
    }
  }
  return [...forms].filter((f) => f !== '').sort((a, b) => b.length - a.length);
}

/**
 * `value` (a result's details, an error message) with every resolved secret value replaced by `[redacted]`, in
 * strings at any depth. Returns `value` itself when there is nothing to redact.
 */
export function redactSecrets<T>(value: T, values: readonly string[]): T {
  if (values.length === 0 || value === undefined) return value;
  const forms = formsOf(values);
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return forms.reduce((s, f) => s.split(f).join(REDACTED), v);
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === 'object' && v !== null)
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(value) as T;
}
