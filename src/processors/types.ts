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
