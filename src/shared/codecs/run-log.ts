import { Ajv } from 'ajv';
import type { OutRecord } from '../kafka/types.js';
import { parseValidJson } from '../messages.js';
import { TASK_ID_HEADER } from './task-event.js';
import { taskIdsSchema } from './task-message.js';

/**
 * The records of `taskmanager.logs` (docs/messages-and-topics.md#run-logs): what a processor logged through
 * `ctx.logger` (info and above) and the output of the command and webhook processors, in chunks written by the
 * consumer every 250 ms or so and at the end of each attempt (key = taskId, header `task-id`).
 */
export const LOGS_TOPIC = 'taskmanager.logs';

/** What is kept of one run (one taskId, all its attempts): its last 1,000 lines or 64 KiB, whichever is less. */
export const RUN_LOG_MAX_LINES = 1000;
export const RUN_LOG_MAX_BYTES = 64 * 1024;
/** A longer line keeps its first 8 KiB; the rest counts as dropped bytes. */
export const RUN_LOG_MAX_LINE_BYTES = 8 * 1024;

/** Where a line came from: a `ctx.logger` level, or a stream of the processor's output. */
export const RUN_LOG_STREAMS = ['info', 'warn', 'error', 'stdout', 'stderr', 'response'] as const;
export type RunLogStream = (typeof RUN_LOG_STREAMS)[number];

export interface RunLogLine {
  at: string;
  stream: RunLogStream;
  text: string;
}

/** Lines and bytes of a run that are not kept. */
export interface Dropped {
  lines: number;
  bytes: number;
}

/** One chunk of an attempt's log on `taskmanager.logs`. */
export interface RunLogChunk {
  v: 1;
  taskId: string;
  scheduleId: string;
  attempt: number;
  lines: RunLogLine[];
  /** What the attempt dropped so far and was not written (the bound, long lines): counted, not kept. */
  dropped?: Dropped;
  /** The attempt's last chunk. */
  end?: boolean;
  /**
   * Lines were dropped between what was written before and this chunk's lines (the attempt went past the bound; the
   * chunk holds a whole bound's tail): readers drop what they hold before it, so what they show has no hole.
   */
  gap?: boolean;
}

/** A run's line as readers show it: with its attempt. */
export interface ShownLine extends RunLogLine {
  attempt: number;
}

export function runLogRecord(chunk: RunLogChunk): OutRecord {
  return {
    topic: LOGS_TOPIC,
    key: chunk.taskId,
    value: JSON.stringify(chunk),
    headers: { [TASK_ID_HEADER]: chunk.taskId },
  };
}

/** A line's schema (the chunk's; the API's adds the attempt). */
export const RUN_LOG_LINE_SCHEMA = {
  type: 'object',
  required: ['at', 'stream', 'text'],
  properties: {
    at: { type: 'string' },
    stream: { type: 'string', enum: [...RUN_LOG_STREAMS] },
    text: { type: 'string' },
  },
} as const;

export const DROPPED_SCHEMA = {
  type: 'object',
  required: ['lines', 'bytes'],
  properties: { lines: { type: 'integer', minimum: 0 }, bytes: { type: 'integer', minimum: 0 } },
} as const;

const chunkSchema = {
  type: 'object',
  required: ['v', 'taskId', 'scheduleId', 'attempt', 'lines'],
  properties: {
    ...taskIdsSchema,
    attempt: { type: 'integer', minimum: 0 },
    lines: { type: 'array', items: RUN_LOG_LINE_SCHEMA },
    dropped: DROPPED_SCHEMA,
    end: { type: 'boolean' },
    gap: { type: 'boolean' },
  },
} as const;

const isChunk = new Ajv({ allErrors: true, strict: true }).compile<RunLogChunk>(chunkSchema);

/** A `taskmanager.logs` record value as a chunk, or undefined when it is none. */
export function parseRunLogChunk(value: Buffer | null): RunLogChunk | undefined {
  return parseValidJson(value, isChunk);
}

/** Bytes of a line as counted against the bound: its text, UTF-8. */
export function lineBytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/**
 * The last lines pushed, bounded by count and bytes (the oldest go first), with what went counted. The consumer
 * keeps an attempt's tail in one, taskapi and `taskconsumer logs` a run's.
 */
export class LogTail<L extends { text: string }> {
  private lines: L[] = [];
  private head = 0;
  private bytes = 0;
  readonly dropped: Dropped = { lines: 0, bytes: 0 };

  constructor(
    private readonly maxLines = RUN_LOG_MAX_LINES,
    private readonly maxBytes = RUN_LOG_MAX_BYTES,
  ) {}

  push(line: L): void {
    this.lines.push(line);
    this.bytes += lineBytes(line.text);
    while (this.lines.length - this.head > this.maxLines || this.bytes > this.maxBytes) {
      const first = this.lines[this.head++]!;
      const b = lineBytes(first.text);
      this.bytes -= b;
      this.dropped.lines++;
      this.dropped.bytes += b;
    }
    // Compacted now and then rather than a shift per line.
    if (this.head > this.maxLines) {
      this.lines = this.lines.slice(this.head);
      this.head = 0;
    }
  }

  /** Drops every line kept (counted). */
  dropAll(): void {
    this.dropped.lines += this.size;
    this.dropped.bytes += this.bytes;
    this.lines = [];
    this.head = 0;
    this.bytes = 0;
  }

  /** Lines kept, oldest first. */
  kept(): L[] {
    return this.lines.slice(this.head);
  }

  get size(): number {
    return this.lines.length - this.head;
  }

  /** Bytes kept. */
  get weight(): number {
    return this.bytes;
  }
}

/** What a reader shows of one run: its kept lines, what was dropped, and which attempts ended. */
export interface RunLogView {
  lines: ShownLine[];
  dropped: Dropped;
  /** Attempts whose last chunk was read. */
  ended: number[];
}

/** A run's chunks folded into its bounded tail, as taskapi and `taskconsumer logs` show it. */
export class RunLogFold {
  private readonly tail = new LogTail<ShownLine>();
  private readonly ended = new Set<number>();
  /** What each attempt's writer dropped, as its latest chunk says (the counts only grow). */
  private readonly writerDropped = new Map<number, Dropped>();

  add(c: RunLogChunk): void {
    if (c.gap) this.tail.dropAll();
    for (const l of c.lines) this.tail.push({ ...l, attempt: c.attempt });
    if (c.end) this.ended.add(c.attempt);
    if (c.dropped) this.writerDropped.set(c.attempt, c.dropped);
  }

  view(): RunLogView {
    const dropped = { ...this.tail.dropped };
    for (const d of this.writerDropped.values()) {
      dropped.lines += d.lines;
      dropped.bytes += d.bytes;
    }
    return { lines: this.tail.kept(), dropped, ended: [...this.ended].sort((a, b) => a - b) };
  }

  /** Bytes held, about (the lines' text and their fields). */
  get weight(): number {
    return this.tail.weight + this.tail.size * 64;
  }
}
