/** Stable machine-readable error codes; log lines and exit codes key off these, not off messages. */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'USAGE'
  | 'DECODE_ERROR'
  | 'UNKNOWN_PROCESSOR'
  | 'NON_RETRIABLE'
  | 'PROCESSOR_TIMEOUT'
  | 'ABORTED'
  /** A cancel request stopped the task (taskmanager.cancels). */
  | 'CANCELLED'
  | 'KAFKA'
  | 'TASK_FAILED'
  /** What was asked for does not exist (a schedule entry, a task): HTTP 404. */
  | 'NOT_FOUND'
  /** It exists, but its state forbids this now (another instance owns it, it changed meanwhile): HTTP 409. */
  | 'CONFLICT'
  /** A topic the program needs does not exist: created by an operator (scripts/create-topics.sh), not waited for. */
  | 'TOPIC_MISSING'
  | 'INTERNAL';

export interface AppErrorOptions {
  /** Whether trying the same thing again may succeed. @default false */
  retriable?: boolean;
  cause?: unknown;
}

/** Base of every error we raise on purpose: a code, whether a retry can help, and the cause. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** What a processor can attach to a failure: shown in the FAILED event; a wait the far side asked for. */
export interface FailureDetails {
  /** Small JSON (status code, response excerpt, exit code, output tail) for the FAILED event's `result`. */
  details?: Record<string, unknown>;
  /** Retry no sooner than this (an HTTP Retry-After): the backoff waits at least this long. */
  retryAfterMs?: number;
  cause?: unknown;
}

/** Thrown by a processor when retrying cannot help: the task goes to the DLQ at once. */
export class NonRetriableError extends AppError {
  readonly details: Record<string, unknown> | undefined;

  constructor(message: string, options: Omit<FailureDetails, 'retryAfterMs'> = {}) {
    super('NON_RETRIABLE', message, {
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      retriable: false,
    });
    this.details = options.details;
  }
}

/** A failure a later attempt may not have (a 503, a timeout, a busy mail server): retried with backoff. */
export class RetriableError extends AppError {
  readonly details: Record<string, unknown> | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options: FailureDetails = {}) {
    super('TASK_FAILED', message, {
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      retriable: true,
    });
    this.details = options.details;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** One problem in a config file, located by JSON path. */
export interface ConfigProblem {
  file: string;
  /** Array index of the entry, when the problem belongs to one. */
  index?: number;
  /** The entry's `Id`, when it has a readable one. */
  id?: string;
  /** JSON path inside the entry (or the file), e.g. `Cron` or `TaskMessageTemplate.TaskProcessorName`. */
  path: string;
  message: string;
}

export function formatProblem(p: ConfigProblem): string {
  const entry =
    p.index === undefined ? '' : ` [${p.index}]${p.id === undefined ? '' : ` (Id ${JSON.stringify(p.id)})`}`;
  const path = p.path === '' ? '' : ` ${p.path}`;
  const where = entry + path;
  return where === '' ? `${p.file}: ${p.message}` : `${p.file}:${where}: ${p.message}`;
}

/** Every problem found in one config file, reported together. */
export class ConfigError extends AppError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: ConfigProblem[]) {
    const first = problems[0];
    super(
      'CONFIG_INVALID',
      problems.length === 1 && first
        ? formatProblem(first)
        : `${problems.length} problems:\n${problems.map(formatProblem).join('\n')}`,
    );
    this.problems = Object.freeze([...problems]);
  }
}

/** A message of any shape (including non-Error throws) as one line. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message.replace(/\s*\n\s*/g, ' | ');
  if (typeof err === 'string') return err;
  try {
    return `non-Error thrown: ${JSON.stringify(err)}`;
  } catch {
    return `non-Error thrown: ${String(err)}`;
  }
}
