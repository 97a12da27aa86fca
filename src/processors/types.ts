import type { Logger } from '../shared/logger.js';
import type { TaskMessage } from '../shared/codecs/task-message.js';

/** What a processor gets besides the task. */
export interface ProcessorContext {
  /** Aborted when the drain deadline (or the per-task timeout) passes: stop work and reject. */
  signal: AbortSignal;
  logger: Logger;
  /** 1 on the first try. */
  attempt: number;
  /** Where the task was read from. */
  source: { topic: string; partition: number; offset: string };
  /**
   * How far the run is: `fraction` from 0 to 1 (clamped; not a number throws a TypeError), with an optional short
   * message. Becomes a PROGRESS event, at most one a second (the last one is written when the attempt ends).
   */
  progress(fraction: number, message?: string): void;
  /**
   * A chunk of the processor's output (a command's stdout/stderr, a webhook's response), kept in the run's log on
   * `taskmanager.logs` line by line, secrets redacted. What `logger` writes at info and above goes there too.
   */
  output(stream: OutputStream, chunk: string | Buffer): void;
}

/** The streams of a processor's output in the run log. */
export type OutputStream = 'stdout' | 'stderr' | 'response';

/** What `ctx.progress` reported last. */
export interface Progress {
  fraction: number;
  message?: string;
}

/** What a processor may return: small JSON shown as `result` in the FINISHED event (a status, a message id). */
export interface ProcessorResult {
  details?: Record<string, unknown>;
}

/**
 * A named unit of work. `process` resolves on success, throws `NonRetriableError` when retrying cannot help, and
 * throws anything else to be retried with backoff (`RetriableError` can say when, and attach details).
 */
export interface Processor {
  readonly name: string;
  /** Other names it answers to (e.g. `webhook` for `WebhookProcessor`). */
  readonly aliases?: readonly string[];
  process(task: TaskMessage, ctx: ProcessorContext): Promise<void | ProcessorResult>;
}
