import { backoffDelayMs } from '../shared/backoff.js';
import type { BackoffOptions } from '../shared/backoff.js';
import type { Clock, TimerHandle } from '../shared/clock.js';
import { sleep } from '../shared/clock.js';
import { AppError, errorMessage, NonRetriableError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { lazyChild } from '../shared/logger.js';
import { decodeTaskMessage, DecodeError } from '../shared/codecs/task-message.js';
import { statusEvent, statusEventRecord } from '../shared/codecs/task-event.js';
import type { DlqReason } from '../shared/codecs/dlq-record.js';
import type { Origin } from '../shared/messages.js';
import type { StatusEvent, TaskStatus } from '../shared/codecs/task-event.js';
import type { TaskMessage } from '../shared/codecs/task-message.js';
import type { BatchingSender, InRecord, OutRecord } from '../shared/kafka/index.js';
import type { ProcessorRegistry } from '../processors/registry.js';
import type { Processor, ProcessorContext, ProcessorResult } from '../processors/types.js';
import { dlqRecord } from '../shared/codecs/dlq-record.js';
import type { ConsumerMetrics } from './metrics.js';
import { redactSecrets, SecretSource } from './secrets.js';
import { CancelledError, Cancels } from './cancels.js';
import { cancelRequest } from '../shared/codecs/cancel-request.js';
import type { CancelRequest } from '../shared/codecs/cancel-request.js';
import type { SlotLease } from './semaphore.js';
import { AttemptLog } from './run-logs.js';
import type { RunLogSink } from './run-logs.js';
import { wantsAlert } from '../shared/schedule/alerts.js';
import type { AlertKind } from '../shared/schedule/alerts.js';
import { alertRecords } from '../shared/codecs/alert-records.js';
import { NO_TRACING, TRACEPARENT_HEADER } from '../shared/tracing.js';
import type { Tracing } from '../shared/tracing.js';
import { endProcess, RunSpans } from './run-spans.js';
import { AttemptSignal, DrainLinks } from './attempt-signal.js';
import { LateStarts } from './late-starts.js';

/** `--executing-after-ms` by default: a run shorter than this writes only its final event. */
export const DEFAULT_EXECUTING_AFTER_MS = 500;

export interface TaskRunnerOptions {
  registry: ProcessorRegistry;
  sender: BatchingSender;
  clock: Clock;
  logger: Logger;
  origin: Origin;
  /** Attempts before the DLQ. @default 5 */
  maxAttempts: number;
  /** Per-attempt timeout; 0 = none. @default 0 */
  taskTimeoutMs: number;
  backoff?: BackoffOptions;
  /** Outcome hooks for tests. */
  onOutcome?(outcome: TaskOutcome): void;
  metrics?: ConsumerMetrics;
  /** Resolves `{"$secret": …}` references in payloads. @default `TASKMANAGER_SECRET_*` of process.env */
  secrets?: SecretSource;
  /** The cancel requests read from `taskmanager.cancels`: none are honoured without it. */
  cancels?: Cancels;
  /** Where run logs go (`taskmanager.logs`): none are kept without it. */
  runLogs?: RunLogSink;
  /** The `consume` and `process` spans (docs/operations.md#traces). @default none */
  tracing?: Tracing;
  /**
   * An attempt's EXECUTING event is written once it has run this long; 0 = as it starts. A shorter attempt writes
   * only its final event, which says when it started (docs/messages-and-topics.md#status-and-audit-events).
   * @default DEFAULT_EXECUTING_AFTER_MS
   */
  executingAfterMs?: number;
}

/** `done`: the record may be committed (finished or dead-lettered). `interrupted`: leave it for re-delivery. */
export type RunResult = 'done' | 'interrupted';

export interface TaskOutcome {
  taskId: string;
  status: 'FINISHED' | 'DLQ' | 'INTERRUPTED' | 'CANCELLED' | 'SKIPPED';
  attempts: number;
  reason?: DlqReason;
}

/** What to dead-letter, and why (see TaskRunner.deadLetter). */
interface DeadLetter {
  rec: InRecord;
  /** The decoded task; none when the record could not be decoded. */
  task?: TaskMessage;
  /** The metrics label: the processor's name, `unresolved` when the record named none we know. */
  processorName: string;
  taskId: string;
  reason: DlqReason;
  error: string;
  attempts: number;
  drain: AbortSignal;
  durationMs?: number;
  /** When the attempt that failed started, when one did. */
  startedAt?: string;
  details?: Record<string, unknown>;
}

/** Whether and why an attempt was aborted (its {@link AttemptSignal}). */
interface AbortState {
  readonly aborted: boolean;
  readonly reason: unknown;
}

/** How one attempt ended. */
interface Attempt {
  succeeded: boolean;
  failure: unknown;
  /** The processor's result details, secrets redacted. */
  result: Record<string, unknown> | undefined;
  secretValues: readonly string[];
  durationMs: number;
  /** When it started (ISO 8601): every event that ends it says so. */
  startedAt: string;
  /** Whether the drain, a cancel request or the task timeout aborted it. */
  abort: AbortState;
}

/** The identity of a record for log lines: topic/partition/offset, plus the taskId when it is known. */
function where(rec: InRecord): string {
  return `${rec.topic}/${rec.partition}@${rec.offset}`;
}

/**
 * Runs one task record to a final state: decode, resolve the processor, run it with retries, dead-letter it
 * when it cannot succeed. Writes the status events. Resolves `done` only when what it did is durable in Kafka.
 */
export class TaskRunner {
  private readonly secrets: SecretSource;
  /** The cancel requests read, and those this consumer made itself (overlap `replace`). */
  private readonly cancels: Cancels;
  private readonly spans: RunSpans;
  /** The EXECUTING events waiting for `executingAfterMs`. */
  private readonly lateStarts: LateStarts;
  /** The attempts (and waits between them) aborted by each drain signal. */
  private readonly drains = new DrainLinks();
  /** `by` of every event this runner writes. */
  private readonly by: StatusEvent['by'];

  constructor(private readonly o: TaskRunnerOptions) {
    this.lateStarts = new LateStarts(o.clock, o.executingAfterMs ?? DEFAULT_EXECUTING_AFTER_MS);
    this.by = { ...o.origin, role: 'consumer' };
    this.spans = new RunSpans(o.tracing ?? NO_TRACING);
    if (this.spans.enabled) {
      const { onOutcome } = o;
      this.o = {
        ...o,
        onOutcome: (out) => {
          this.spans.outcome(out.status, out.attempts);
          onOutcome?.(out);
        },
      };
    }
    this.secrets = o.secrets ?? new SecretSource();
    if (o.cancels) this.cancels = o.cancels;
    else {
      this.cancels = new Cancels(() => o.clock.now());
      this.cancels.caughtUp();
    }
  }

  /**
   * Overlap `replace`: the run `taskId` (running or waiting) is cancelled because `byTaskId`, a later run of the same
   * schedule, came; it ends CANCELLED saying so. Local to this consumer: after a crash both records are read again
   * in order and the later one replaces the earlier one again.
   */
  replace(taskId: string, byTaskId: string): void {
    const req = cancelRequest(taskId, new Date(this.o.clock.now()), 'consumer', {
      reason: `replaced by ${byTaskId} (overlap replace)`,
    });
    this.cancels.add(req);
  }

  /**
   * Overlap `skip`: the task is not run, because a run of its schedule was still running or waiting (`why`); done
   * once its SKIPPED event is acknowledged. A record that is no task goes to the DLQ as any other.
   */
  skip(rec: InRecord, why: string, drain: AbortSignal): Promise<RunResult> {
    if (this.spans.enabled) return this.spans.consume(rec, () => this.skipRecord(rec, why, drain));
    return this.skipRecord(rec, why, drain);
  }

  private async skipRecord(rec: InRecord, why: string, drain: AbortSignal): Promise<RunResult> {
    const resolved = this.resolve(rec, drain, undefined);
    if (resolved instanceof Promise) return resolved;
    const { task, processor, log } = resolved;
    // The alert, when the schedule asks for one, in the same request as the SKIPPED event.
    const alert = this.alertRecords(task, 'skipped', `not run: ${why}`, rec);
    const ok = await this.durably(drain, log, () =>
      this.o.sender.send([this.eventRecord(task, 'SKIPPED', 0, rec, { error: why }), ...alert]),
    );
    if (!ok) return this.interrupted(task, 0);
    if (alert.length > 0) this.o.metrics?.alert(task, 'skipped');
    this.o.metrics?.skipped(processor.name);
    log.info(`task ${task.taskId} at ${where(rec)} skipped: ${why}`);
    this.o.onOutcome?.({ taskId: task.taskId, status: 'SKIPPED', attempts: 0 });
    return 'done';
  }

  /**
   * @param slot the caller's claim on a `--concurrency` slot, held when called: given back as soon as an attempt's
   *   processor settled (the FINISHED acknowledgement, a DLQ write or a retry backoff need no slot, and holding one
   *   through a broker round trip would cap throughput at concurrency / round trip), taken again for a retry.
   */
  run(rec: InRecord, drain: AbortSignal, slot?: SlotLease): Promise<RunResult> {
    if (this.spans.enabled) return this.spans.consume(rec, () => this.runRecord(rec, drain, slot));
    return this.runRecord(rec, drain, slot);
  }

  private async runRecord(rec: InRecord, drain: AbortSignal, slot?: SlotLease): Promise<RunResult> {
    const resolved = this.resolve(rec, drain, slot);
    if (resolved instanceof Promise) return resolved;
    const { task, processor, log } = resolved;
    if (!this.cancels.caughtUpAlready) await this.cancels.ready;
    /** What this run raised already: an overrun alert once per run, whichever attempt overran. */
    const raised = { overrun: false };
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1) {
        await slot?.acquire();
        if (drain.aborted) return this.interrupted(task, attempt - 1);
      }
      // Cancelled before this attempt started (waiting in its lane, or between retries): it never starts.
      const early = this.cancels.requestOf(task.taskId);
      if (early) {
        slot?.release();
        return this.cancelled(task, processor.name, rec, attempt - 1, log, drain, early);
      }
      const a = await this.attempt(task, processor, rec, attempt, log, drain, slot, raised);
      const { failure, durationMs } = a;
      if (a.succeeded) return this.finished(task, processor.name, rec, attempt, log, drain, a);
      if (failure instanceof CancelledError || a.abort.reason instanceof CancelledError) {
        const req = (failure instanceof CancelledError ? failure : (a.abort.reason as CancelledError))
          .request;
        return this.cancelled(task, processor.name, rec, attempt, log, drain, req, a);
      }
      const { msg, error, details } = describeFailure(a, drain, this.o.taskTimeoutMs);
      if (drain.aborted) {
        log.warn(
          `task ${task.taskId} at ${where(rec)} interrupted by the drain deadline; it will be re-delivered`,
        );
        void this.emit(task, 'FAILED', attempt, rec, {
          startedAt: a.startedAt,
          durationMs,
          error: `interrupted: ${msg}`,
        }).catch(() => undefined);
        return this.interrupted(task, attempt);
      }
      const nonRetriable =
        failure instanceof NonRetriableError ||
        (failure instanceof AppError && failure.code === 'NON_RETRIABLE');
      const final = nonRetriable || attempt >= this.o.maxAttempts;
      this.o.metrics?.attemptFailed(processor.name, durationMs, !final);
      if (final) {
        const reason: DlqReason = nonRetriable ? 'non-retriable' : 'attempts-exhausted';
        log.error(
          `task ${task.taskId} at ${where(rec)} failed for good (${reason}, attempt ${attempt}): ${error}; sent to DLQ`,
        );
        return this.deadLetter({
          rec,
          task,
          processorName: processor.name,
          taskId: task.taskId,
          reason,
          error,
          attempts: attempt,
          drain,
          durationMs,
          startedAt: a.startedAt,
          ...(details ? { details } : {}),
        });
      }
      // At least what the far side asked for (Retry-After), up to 10 minutes.
      const delay = Math.max(
        backoffDelayMs(attempt, { ...this.o.backoff, jitter: true }),
        Math.min(retryAfterOf(failure) ?? 0, MAX_RETRY_AFTER_MS),
      );
      log.warn(
        `task ${task.taskId} attempt ${attempt}/${this.o.maxAttempts} failed: ${error}; retrying in ${delay} ms`,
      );
      void this.emit(task, 'FAILED', attempt, rec, {
        startedAt: a.startedAt,
        durationMs,
        error,
        ...(details ? { result: details } : {}),
      }).catch(() => undefined);
      // A cancel during the wait ends it at once: the next turn of the loop finds the request.
      const waiting = new AttemptSignal();
      this.watch(task.taskId, drain, waiting);
      try {
        await sleep(this.o.clock, delay, waiting.signal);
      } catch {
        if (drain.aborted || !(waiting.reason instanceof CancelledError))
          return this.interrupted(task, attempt);
      } finally {
        this.unwatch(task.taskId, drain, waiting);
      }
    }
  }

  /** A successful attempt is done once its FINISHED event is acknowledged. */
  private async finished(
    task: TaskMessage,
    processorName: string,
    rec: InRecord,
    attempt: number,
    log: Logger,
    drain: AbortSignal,
    { durationMs, result, startedAt }: Attempt,
  ): Promise<RunResult> {
    const ok = await this.durably(drain, log, () =>
      this.emit(task, 'FINISHED', attempt, rec, { startedAt, durationMs, ...(result ? { result } : {}) }),
    );
    if (!ok) return this.interrupted(task, attempt);
    this.o.metrics?.attemptFinished(processorName, durationMs);
    if (log.isDebugEnabled()) log.debug(`task ${task.taskId} finished`, { attempt, durationMs });
    this.o.onOutcome?.({ taskId: task.taskId, status: 'FINISHED', attempts: attempt });
    return 'done';
  }

  /**
   * A task cancelled before it started (`attempts` 0) or while it ran: final, never retried nor dead-lettered; done
   * once its CANCELLED event is acknowledged.
   */
  private async cancelled(
    task: TaskMessage,
    processorName: string,
    rec: InRecord,
    attempts: number,
    log: Logger,
    drain: AbortSignal,
    req: CancelRequest,
    ran?: Attempt,
  ): Promise<RunResult> {
    const error = new CancelledError(req).message;
    const ok = await this.durably(drain, log, () =>
      this.emit(task, 'CANCELLED', attempts, rec, {
        error,
        ...(ran ? { startedAt: ran.startedAt, durationMs: ran.durationMs } : {}),
      }),
    );
    if (!ok) return this.interrupted(task, attempts);
    this.o.metrics?.cancelled(processorName, attempts > 0);
    log.info(
      `task ${task.taskId} at ${where(rec)} ${attempts > 0 ? `stopped in attempt ${attempts}` : 'not started'}: ${error}`,
    );
    this.o.onOutcome?.({ taskId: task.taskId, status: 'CANCELLED', attempts });
    return 'done';
  }

  private interrupted(task: TaskMessage, attempts: number): RunResult {
    this.o.onOutcome?.({ taskId: task.taskId, status: 'INTERRUPTED', attempts });
    return 'interrupted';
  }

  /**
   * Decodes a record and finds its processor; a record that is no task, or names no processor we know, goes to the
   * DLQ (the promise of what that did).
   */
  private resolve(
    rec: InRecord,
    drain: AbortSignal,
    slot: SlotLease | undefined,
  ): { task: TaskMessage; processor: Processor; log: Logger } | Promise<RunResult> {
    let task: TaskMessage;
    try {
      task = decodeTaskMessage(rec.value);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      const taskId = rec.headers['task-id'] ?? `unknown@${where(rec)}`;
      this.o.logger.error(`undecodable record at ${where(rec)}: ${err.message}; sent to DLQ`, { taskId });
      slot?.release();
      return this.deadLetter({
        rec,
        processorName: 'unresolved',
        taskId,
        reason: 'decode-error',
        error: err.message,
        attempts: 0,
        drain,
      });
    }
    const log = lazyChild(this.o.logger, { taskId: task.taskId });
    const processor = this.o.registry.resolve(task.processor);
    if (!processor) {
      const msg = `unknown processor ${JSON.stringify(task.processor)}; known: ${this.o.registry.names().join(', ')}`;
      log.error(`task ${task.taskId} at ${where(rec)}: ${msg}; sent to DLQ`);
      slot?.release();
      return this.deadLetter({
        rec,
        task,
        processorName: 'unresolved',
        taskId: task.taskId,
        reason: 'unknown-processor',
        error: msg,
        attempts: 0,
        drain,
      });
    }
    return { task, processor, log };
  }

  /**
   * One attempt: the processor run under the drain, cancel requests and the task timeout, its EXECUTING event
   * written once it has run `executingAfterMs`, the slot given back as soon as the processor settled.
   */
  private async attempt(
    task: TaskMessage,
    processor: Processor,
    rec: InRecord,
    attempt: number,
    log: Logger,
    drain: AbortSignal,
    slot: SlotLease | undefined,
    raised: { overrun: boolean },
  ): Promise<Attempt> {
    const started = this.o.clock.now();
    const startedAt = new Date(started).toISOString();
    const late = this.lateStarts.add(
      started,
      () =>
        void this.emit(task, 'EXECUTING', attempt, rec, { startedAt }).catch((err: unknown) =>
          log.warn(`could not publish the EXECUTING event of task ${task.taskId}: ${errorMessage(err)}`),
        ),
    );
    const overrun = this.overrunTimer(task, rec, attempt, started, log, drain, raised);
    const span = this.spans.enabled ? this.spans.process(attempt, task) : undefined;
    this.o.metrics?.attemptStarted(processor.name);
    const abort = new AttemptSignal();
    this.watch(task.taskId, drain, abort);
    const timeoutMs = this.o.taskTimeoutMs;
    if (timeoutMs > 0)
      abort.timeout(
        this.o.clock,
        timeoutMs,
        () => new AppError('PROCESSOR_TIMEOUT', `timed out after ${timeoutMs} ms`),
      );
    const source = { topic: rec.topic, partition: rec.partition, offset: rec.offset };
    let succeeded = false;
    let failure: unknown;
    let result: Record<string, unknown> | undefined;
    /** The secret values this attempt resolved: kept out of every result, error and log line written after it. */
    let secretValues: readonly string[] = [];
    /**
     * Made when the processor first reads `ctx.logger`, `ctx.progress` or `ctx.output` (most never do); closed at
     * once when that is after the attempt ended (a processor abandoned at its timeout goes on), as it would have been.
     */
    let runLog: AttemptLog | undefined;
    let ended = false;
    const logOf = (): AttemptLog => {
      if (runLog) return runLog;
      runLog = new AttemptLog({
        ids: task,
        attempt,
        clock: this.o.clock,
        logger: log,
        ...(this.o.runLogs ? { sink: this.o.runLogs } : {}),
        secrets: () => secretValues,
        onProgress: (progress) => {
          // A reader folds progress into a run it knows started: the EXECUTING goes first.
          this.lateStarts.now(late);
          void this.emit(task, 'PROGRESS', attempt, rec, { progress }).catch((err: unknown) =>
            log.warn(`could not publish a PROGRESS event of task ${task.taskId}: ${errorMessage(err)}`),
          );
        },
      });
      if (ended) runLog.close();
      return runLog;
    };
    const ctx: ProcessorContext = {
      // Made only when the processor reads it (AttemptSignal).
      get signal(): AbortSignal {
        return abort.signal;
      },
      get logger(): Logger {
        return logOf().logger;
      },
      attempt,
      source,
      get progress(): ProcessorContext['progress'] {
        return logOf().progress;
      },
      get output(): ProcessorContext['output'] {
        return logOf().output;
      },
    };
    try {
      // A processor that throws synchronously is treated like one that rejects; one that ignores its signal
      // is abandoned when the signal fires, so it cannot hold a drain or a partition forever.
      const outcome = await abort.race(
        SecretSource.refersToSecrets(task)
          ? this.secrets.resolve(task).then((resolved) => {
              secretValues = resolved.values;
              return processor.process(resolved.task, ctx);
            })
          : processorRun(processor, task, ctx),
      );
      result = redactSecrets(
        outcome && typeof outcome === 'object' ? outcome.details : undefined,
        secretValues,
      );
      succeeded = true;
    } catch (err) {
      failure = err;
    } finally {
      // Unlinked now, not after the acknowledgement: every task waiting for Kafka would otherwise stay linked.
      this.unwatch(task.taskId, drain, abort);
      this.lateStarts.end(late);
      if (overrun) this.o.clock.clearTimeout(overrun);
      slot?.release();
      // Handed to the senders at once, never waited for: the last PROGRESS goes ahead of the status event that
      // follows (in its produce request or the one before), the last log lines in a request of their own.
      ended = true;
      runLog?.close();
      if (span) endProcess(span, succeeded ? 'succeeded' : outcomeOf(failure, abort), failure);
    }
    return {
      succeeded,
      failure,
      result,
      secretValues,
      durationMs: this.o.clock.now() - started,
      startedAt,
      abort,
    };
  }

  /** `target` (an attempt, or the wait before the next) is aborted by the drain and by a cancel of the task. */
  private watch(taskId: string, drain: AbortSignal, target: AttemptSignal): void {
    this.drains.link(drain, target);
    this.cancels.watch(taskId, target);
  }

  private unwatch(taskId: string, drain: AbortSignal, target: AttemptSignal): void {
    target.dispose();
    this.drains.unlink(drain, target);
    this.cancels.unwatch(taskId, target);
  }

  private async deadLetter(d: DeadLetter): Promise<RunResult> {
    const {
      rec,
      task,
      processorName,
      taskId,
      reason,
      error,
      attempts,
      drain,
      durationMs,
      startedAt,
      details,
    } = d;
    const now = this.o.clock.now();
    const records: OutRecord[] = [dlqRecord(rec, reason, error, attempts, now)];
    // The failed alert, when the schedule asks for one, goes in the same request: raised once the DLQ record is.
    const alert = this.alertRecords(task, 'failed', `${reason} after ${attempts} attempt(s): ${error}`, rec);
    records.push(
      this.eventRecord(
        { taskId, scheduleId: task?.scheduleId ?? rec.key?.toString('utf8') ?? '' },
        'FAILED',
        attempts,
        rec,
        {
          error,
          final: true,
          dlqReason: reason,
          ...(startedAt === undefined ? {} : { startedAt }),
          ...(durationMs === undefined ? {} : { durationMs }),
          ...(details ? { result: details } : {}),
        },
      ),
    );
    records.push(...alert);
    // The DLQ record and the final event go in one request: the offset is resolved only after both are acked.
    const ok = await this.durably(drain, this.o.logger, () => this.o.sender.send(records));
    if (!ok) {
      this.o.onOutcome?.({ taskId, status: 'INTERRUPTED', attempts });
      return 'interrupted';
    }
    // Counted once acknowledged, like FINISHED: an interrupted write is read again and would count twice.
    this.o.metrics?.deadLetter(processorName, reason);
    if (task && alert.length > 0) this.o.metrics?.alert(task, 'failed');
    this.o.onOutcome?.({ taskId, status: 'DLQ', attempts, reason });
    return 'done';
  }

  /**
   * The records of an alert of `kind` about `task` (its ALERT event and its delivery task on the task's topic), when
   * the task's schedule asks for that kind; none otherwise.
   */
  private alertRecords(
    task: TaskMessage | undefined,
    kind: AlertKind,
    reason: string,
    rec: InRecord,
  ): OutRecord[] {
    if (!task?.alerts || !wantsAlert(task.alerts, kind)) return [];
    const group = task.scheduler.group;
    const alert = {
      kind,
      scheduleId: task.scheduleId,
      taskId: task.taskId,
      scheduledFor: task.scheduledFor,
      reason,
      at: new Date(this.o.clock.now()).toISOString(),
      group,
    };
    const by = { ...this.o.origin, role: 'consumer' as const };
    return alertRecords(alert, task.alerts, rec.topic, by, { ...this.o.origin, group });
  }

  /**
   * The timer of an attempt's overrun alert, when the task's schedule asks for one and this run raised none yet: at
   * `overrunSeconds` after the attempt started it writes the alert (the attempt clears it when it ends before).
   */
  private overrunTimer(
    task: TaskMessage,
    rec: InRecord,
    attempt: number,
    startedMs: number,
    log: Logger,
    drain: AbortSignal,
    raised: { overrun: boolean },
  ): TimerHandle | undefined {
    const seconds = task.alerts?.overrunSeconds;
    if (seconds === undefined || raised.overrun) return undefined;
    return this.o.clock.setTimeout(() => {
      raised.overrun = true;
      const since = new Date(startedMs).toISOString();
      const records = this.alertRecords(
        task,
        'overrun',
        `attempt ${attempt} still running ${seconds} s after it started (${since})`,
        rec,
      );
      log.warn(
        `task ${task.taskId}: attempt ${attempt} still running ${seconds} s after it started; alert raised`,
      );
      // Retried like the run's own events (the attempt does not wait for it), until written or the drain.
      void this.durably(drain, log, () => this.o.sender.send(records)).then((ok) => {
        if (ok) this.o.metrics?.alert(task, 'overrun');
        else
          log.error(`could not write the overrun alert of task ${task.taskId} before the consumer stopped`);
      });
    }, seconds * 1000);
  }

  /** Retries a Kafka write until it succeeds or the drain aborts; false when it never got through. */
  private async durably(drain: AbortSignal, log: Logger, write: () => Promise<void>): Promise<boolean> {
    for (let i = 1; ; i++) {
      try {
        await write();
        return true;
      } catch (err) {
        if (drain.aborted) return false;
        const delay = backoffDelayMs(i, { baseMs: 100, maxMs: 5000 });
        log.error(`cannot write to Kafka (${errorMessage(err)}); retrying in ${delay} ms`);
        try {
          await sleep(this.o.clock, delay, drain);
        } catch {
          return false;
        }
      }
    }
  }

  private emit(
    task: TaskMessage,
    status: TaskStatus,
    attempt: number,
    rec: InRecord,
    extra: Partial<StatusEvent> = {},
  ): Promise<void> {
    return this.o.sender.send([this.eventRecord(task, status, attempt, rec, extra)]);
  }

  private eventRecord(
    ids: { taskId: string; scheduleId: string },
    status: TaskStatus,
    attempt: number,
    rec: InRecord,
    extra: Partial<StatusEvent>,
  ): OutRecord {
    const at = new Date(this.o.clock.now()).toISOString();
    const source = { topic: rec.topic, partition: rec.partition, offset: rec.offset };
    const record = statusEventRecord(statusEvent(ids, status, at, attempt, this.by, { source, ...extra }));
    // The run's trace goes on with its events, whether or not this consumer traces (the DLQ record keeps all headers).
    const traceparent = rec.headers[TRACEPARENT_HEADER];
    if (traceparent !== undefined) (record.headers ??= {})[TRACEPARENT_HEADER] = traceparent;
    return record;
  }
}

const MAX_RETRY_AFTER_MS = 10 * 60_000;

/** The processor's run as a promise: one that throws synchronously rejects it, one that returns a value fulfils it. */
function processorRun(
  processor: Processor,
  task: TaskMessage,
  ctx: ProcessorContext,
): Promise<void | ProcessorResult> {
  try {
    const out = processor.process(task, ctx);
    return out instanceof Promise ? out : Promise.resolve(out);
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

/** How a failed attempt ended, for its span. */
function outcomeOf(failure: unknown, abort: AbortState): string {
  if (failure instanceof CancelledError || abort.reason instanceof CancelledError) return 'cancelled';
  return abort.aborted ? 'aborted' : 'failed';
}

/**
 * A failed attempt in words, secrets redacted: the processor's message, the error to record (saying so when the
 * task timeout ended it) and the details it attached.
 */
function describeFailure(
  a: Attempt,
  drain: AbortSignal,
  taskTimeoutMs: number,
): { msg: string; error: string; details: Record<string, unknown> | undefined } {
  const msg = redactSecrets(errorMessage(a.failure), a.secretValues);
  const details = redactSecrets(detailsOf(a.failure), a.secretValues);
  const timedOut = a.abort.aborted && !drain.aborted;
  const error =
    timedOut && !msg.startsWith('timed out') ? `timed out after ${taskTimeoutMs} ms (${msg})` : msg;
  return { msg, error, details };
}

/** The details a processor attached to its failure (NonRetriableError, RetriableError), if any. */
function detailsOf(err: unknown): Record<string, unknown> | undefined {
  const d = (err as { details?: unknown } | undefined)?.details;
  return d && typeof d === 'object' ? (d as Record<string, unknown>) : undefined;
}

function retryAfterOf(err: unknown): number | undefined {
  const ms = (err as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? ms : undefined;
}
