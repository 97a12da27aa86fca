import { StringDecoder } from 'node:string_decoder';
import type { Clock, TimerHandle } from '../shared/clock.js';
import { errorMessage } from '../shared/errors.js';
import type { LogFields, Logger } from '../shared/logger.js';
import type { BatchingSender, KafkaClient } from '../shared/kafka/index.js';
import {
  LogTail,
  LOGS_TOPIC,
  RUN_LOG_MAX_BYTES,
  RUN_LOG_MAX_LINE_BYTES,
  RUN_LOG_MAX_LINES,
  runLogRecord,
} from '../shared/codecs/run-log.js';
import type { Dropped, RunLogChunk, RunLogLine, RunLogStream } from '../shared/codecs/run-log.js';
import type { OutputStream, Progress } from '../processors/types.js';
import { redactSecrets } from './secrets.js';

/** How long a line waits in the consumer before it is written. */
export const RUN_LOG_FLUSH_MS = 250;
/** At most one PROGRESS event per run this often. */
export const PROGRESS_EVERY_MS = 1000;
/** A progress message is cut to this many characters. */
export const MAX_PROGRESS_MESSAGE = 200;

/**
 * Where the consumer's attempts write their logs: `taskmanager.logs` through a sender of its own over the consumer's
 * producer (a log record that fails never takes a status event down with it). Without the topic, logs are not
 * written (said once at start); a write that fails is said once until one succeeds again.
 */
export class RunLogSink {
  private available = false;
  private failing = false;

  constructor(
    private readonly sender: BatchingSender,
    private readonly logger: Logger,
  ) {}

  /** Whether the topic exists: logs are written only then. */
  async open(kafka: Pick<KafkaClient, 'existingTopics'>): Promise<void> {
    try {
      this.available = (await kafka.existingTopics([LOGS_TOPIC])).has(LOGS_TOPIC);
      if (!this.available)
        this.logger.warn(
          `${LOGS_TOPIC} does not exist: run logs are not kept (create it with scripts/create-topics.sh)`,
        );
    } catch (err) {
      this.logger.warn(
        `cannot tell whether ${LOGS_TOPIC} exists (${errorMessage(err)}): run logs are not kept`,
      );
    }
  }

  /** For tests and for a consumer that knows the topic exists. */
  enable(): void {
    this.available = true;
  }

  get enabled(): boolean {
    return this.available;
  }

  write(chunk: RunLogChunk): Promise<void> {
    return this.sender.send([runLogRecord(chunk)]).then(
      () => {
        this.failing = false;
      },
      (err: unknown) => {
        if (this.failing) return;
        this.failing = true;
        this.logger.warn(
          `cannot write the log of task ${chunk.taskId} (attempt ${chunk.attempt}) to ${LOGS_TOPIC}: ${errorMessage(err)}; run log lines are lost until a write succeeds`,
        );
      },
    );
  }
}

export interface AttemptLogOptions {
  ids: { taskId: string; scheduleId: string };
  attempt: number;
  clock: Clock;
  /** The consumer's logger for the task: every ctx.logger line goes there too. */
  logger: Logger;
  /** Absent or not enabled: nothing is written to `taskmanager.logs`. */
  sink?: RunLogSink;
  /** The secret values the attempt resolved (known once the processor starts): kept out of every line. */
  secrets: () => readonly string[];
  /** Writes a PROGRESS event (rate-limited here). */
  onProgress(p: Progress): void;
  flushMs?: number;
}

function same(a: Progress | undefined, b: Progress | undefined): boolean {
  return a?.fraction === b?.fraction && a?.message === b?.message;
}

/** `message {fields}` (fields as JSON, when there are any and they can be written). */
function lineText(message: string, fields?: LogFields): string {
  if (!fields || Object.keys(fields).length === 0) return message;
  try {
    return `${message} ${JSON.stringify(fields)}`;
  } catch {
    return message;
  }
}

/**
 * One attempt's log and progress: `ctx.logger`'s info-and-above lines and the processor's output as lines, secrets
 * redacted, buffered and written every {@link RUN_LOG_FLUSH_MS} and at {@link close}; `ctx.progress` as PROGRESS
 * events, at most one per {@link PROGRESS_EVERY_MS}, the last one always written at the end.
 *
 * Bounded like what readers keep (RUN_LOG_MAX_LINES / RUN_LOG_MAX_BYTES): once that much was written, lines are
 * kept here in a tail of that bound and written when the attempt ends (with the count of those dropped between),
 * so an attempt writes at most about three times the bound whatever it logs.
 */
export class AttemptLog {
  /** Lines not written yet (in the live phase), or the attempt's tail (once past the bound). */
  private buffer = new LogTail<RunLogLine>();
  /** Dropped and no longer counted by {@link buffer}: the buffers written, cut long lines. */
  private readonly dropped: Dropped = { lines: 0, bytes: 0 };
  private readonly written = { lines: 0, bytes: 0 };
  /** Past the bound: nothing more is written until the end. */
  private tailOnly = false;
  private everWritten = false;
  private timer: TimerHandle | undefined;
  private closed = false;
  /** Made at the first output (most processors write none). */
  private partial: Map<OutputStream, { decoder: StringDecoder; text: string }> | undefined;
  private lastProgress: Progress | undefined;
  private pendingProgress: Progress | undefined;
  private progressAt = -Infinity;
  private progressTimer: TimerHandle | undefined;
  private readonly live: boolean;
  private teed: Logger | undefined;

  constructor(private readonly o: AttemptLogOptions) {
    this.live = o.sink?.enabled ?? false;
  }

  /** `ctx.logger`: made when the processor first reads it (most never log). */
  get logger(): Logger {
    return (this.teed ??= this.tee(this.o.logger));
  }

  /** `ctx.progress`: fraction clamped to 0..1 (not a number: TypeError), the message cut and redacted. */
  readonly progress = (fraction: number, message?: string): void => {
    if (typeof fraction !== 'number' || Number.isNaN(fraction))
      throw new TypeError(`ctx.progress: the fraction must be a number from 0 to 1, got ${String(fraction)}`);
    if (this.closed) return;
    const p: Progress = { fraction: Math.min(1, Math.max(0, fraction)) };
    if (typeof message === 'string' && message !== '')
      p.message = redactSecrets(message, this.o.secrets()).slice(0, MAX_PROGRESS_MESSAGE);
    this.pendingProgress = p;
    const wait = this.progressAt + PROGRESS_EVERY_MS - this.o.clock.now();
    if (wait <= 0) this.writeProgress();
    else
      this.progressTimer ??= this.o.clock.setTimeout(() => {
        this.progressTimer = undefined;
        this.writeProgress();
      }, wait);
  };

  /** `ctx.output`: a chunk of a processor's output; split into lines (a long one without newline is cut). */
  readonly output = (stream: OutputStream, chunk: string | Buffer): void => {
    if (this.closed || !this.live) return;
    this.partial ??= new Map();
    let p = this.partial.get(stream);
    if (!p) this.partial.set(stream, (p = { decoder: new StringDecoder('utf8'), text: '' }));
    p.text += typeof chunk === 'string' ? chunk : p.decoder.write(chunk);
    let nl: number;
    while ((nl = p.text.indexOf('\n')) >= 0) {
      this.add(stream, p.text.slice(0, nl).replace(/\r$/, ''));
      p.text = p.text.slice(nl + 1);
    }
    if (p.text.length > RUN_LOG_MAX_LINE_BYTES) this.cutPartial(stream, p);
  };

  /**
   * The attempt ended: its last progress (when it changed) and its last chunk are handed to their senders at once,
   * never waited for, so the status event that follows is not held up (the PROGRESS event goes ahead of it).
   */
  close(): void {
    if (this.closed) return;
    if (this.progressTimer) this.o.clock.clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
    if (!same(this.pendingProgress, this.lastProgress)) this.writeProgress();
    this.closed = true;
    if (!this.live) return;
    for (const [stream, p] of this.partial ?? []) {
      p.text += p.decoder.end();
      if (p.text !== '') this.add(stream, p.text, true);
    }
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const anything = this.everWritten || this.buffer.size > 0 || this.droppedNow().lines > 0;
    if (anything) this.flush(true);
  }

  private writeProgress(): void {
    const p = this.pendingProgress;
    if (!p || same(p, this.lastProgress)) return;
    this.lastProgress = p;
    this.progressAt = this.o.clock.now();
    this.o.onProgress(p);
  }

  /** The logger given to the processor: the consumer's, and info and above into the run log too. */
  private tee(base: Logger): Logger {
    const line =
      (level: 'info' | 'warn' | 'error') =>
      (message: string, fields?: LogFields): void => {
        base[level](message, fields);
        if (!this.closed && this.live) this.add(level, lineText(message, fields));
      };
    return {
      error: line('error'),
      warn: line('warn'),
      info: line('info'),
      debug: (m, f) => base.debug(m, f),
      child: (fields) => this.tee(base.child(fields)),
      isDebugEnabled: () => base.isDebugEnabled(),
    };
  }

  /**
   * A partial line past the longest line: what of it cannot hold the start of a secret value (redacted first) is
   * cut off as a line; the rest waits for the next chunk, so a value split across chunks is still redacted.
   */
  private cutPartial(stream: OutputStream, p: { text: string }): void {
    const secrets = this.o.secrets();
    const text = redactSecrets(p.text, secrets);
    const hold = Math.min(text.length, 6 * Math.max(0, ...secrets.map((s) => s.length)));
    this.add(stream, text.slice(0, text.length - hold), true);
    p.text = text.slice(text.length - hold);
  }

  private add(stream: RunLogStream, raw: string, redacted = false): void {
    let text = redacted ? raw : redactSecrets(raw, this.o.secrets());
    if (Buffer.byteLength(text, 'utf8') > RUN_LOG_MAX_LINE_BYTES) {
      const whole = Buffer.from(text, 'utf8');
      // Cut on a character boundary: a partial character at the end is dropped by the decoder.
      const cut = new StringDecoder('utf8').write(whole.subarray(0, RUN_LOG_MAX_LINE_BYTES));
      this.dropped.bytes += whole.length - Buffer.byteLength(cut, 'utf8');
      text = cut;
    }
    this.buffer.push({ at: new Date(this.o.clock.now()).toISOString(), stream, text });
    if (!this.tailOnly && !this.timer)
      this.timer = this.o.clock.setTimeout(() => {
        this.timer = undefined;
        this.flush(false);
      }, this.o.flushMs ?? RUN_LOG_FLUSH_MS);
  }

  private droppedNow(): Dropped {
    return {
      lines: this.dropped.lines + this.buffer.dropped.lines,
      bytes: this.dropped.bytes + this.buffer.dropped.bytes,
    };
  }

  /** Writes the buffer (the live phase), or at the end the tail kept since. */
  private flush(end: boolean): void {
    if (this.tailOnly && !end) return;
    const lines = this.buffer.kept();
    const dropped = this.droppedNow();
    const gap = this.buffer.dropped.lines > 0;
    this.dropped.lines = dropped.lines;
    this.dropped.bytes = dropped.bytes;
    this.buffer = new LogTail<RunLogLine>();
    for (const l of lines) {
      this.written.lines++;
      this.written.bytes += Buffer.byteLength(l.text, 'utf8');
    }
    if (this.written.lines >= RUN_LOG_MAX_LINES || this.written.bytes >= RUN_LOG_MAX_BYTES)
      this.tailOnly = true;
    this.everWritten = true;
    void this.o.sink?.write({
      v: 1,
      taskId: this.o.ids.taskId,
      scheduleId: this.o.ids.scheduleId,
      attempt: this.o.attempt,
      lines,
      ...(dropped.lines > 0 || dropped.bytes > 0 ? { dropped } : {}),
      ...(end ? { end: true } : {}),
      ...(gap ? { gap: true } : {}),
    });
  }
}
