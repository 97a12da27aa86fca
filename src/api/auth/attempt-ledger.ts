import { Ajv } from 'ajv';
import type { JSONSchemaType } from 'ajv';
import type { InRecord } from '../../shared/kafka/index.js';
import type { Logger } from '../../shared/logger.js';
import { WRITER_HEADER } from '../../shared/tasks/task-log.js';

/**
 * Keys of `taskmanager.users` that count login and sign-up attempts: `attempts:<subject>`, the subject an HMAC of
 * what is limited (a user name, an address, both), so the topic never holds a name typed into the login form (it may
 * be a password) nor an address.
 */
export const ATTEMPTS_PREFIX = 'attempts:';

/** One attempt, appended before its password is hashed. `max` and `windowMs` travel with it: every reader applies the writer's limit. */
export interface AttemptRecord {
  v: 1;
  kind: 'attempt';
  id: string;
  /** ms since the epoch, the writer's clock. */
  at: number;
  max: number;
  windowMs: number;
}

/** Un-counts one attempt (`id`: a login that succeeded, or one refused by another limit) or all of them (`all`). */
export interface ReleaseRecord {
  v: 1;
  kind: 'release';
  id?: string;
  all?: boolean;
}

/**
 * What a reader made of an attempt record; every reader makes the same, as it follows from the subject's records in
 * log order (one key, one partition).
 */
export type AttemptOutcome =
  | { kind: 'admitted' }
  | { kind: 'refused'; retryAfterMs: number }
  | { kind: 'released' }
  | { kind: 'ignored' };

const attemptSchema: JSONSchemaType<AttemptRecord> = {
  type: 'object',
  required: ['v', 'kind', 'id', 'at', 'max', 'windowMs'],
  properties: {
    v: { type: 'integer', const: 1 },
    kind: { type: 'string', const: 'attempt' },
    id: { type: 'string' },
    at: { type: 'number' },
    max: { type: 'integer', minimum: 1 },
    windowMs: { type: 'number', exclusiveMinimum: 0 },
  },
};
const releaseSchema: JSONSchemaType<ReleaseRecord> = {
  type: 'object',
  required: ['v', 'kind'],
  properties: {
    v: { type: 'integer', const: 1 },
    kind: { type: 'string', const: 'release' },
    id: { type: 'string', nullable: true },
    all: { type: 'boolean', nullable: true },
  },
};
const ajv = new Ajv({ strict: true });
const isAttempt = ajv.compile(attemptSchema);
const isRelease = ajv.compile(releaseSchema);

interface Subject {
  /** Admitted attempts not released, oldest first. */
  counted: Array<{ id: string; at: number }>;
  windowMs: number;
  /** The time of its last attempt record, and who wrote it (who removes the subject once it is idle). */
  lastAt: number;
  lastWriter: string | undefined;
}

/** In memory at most this many subjects; the least recently attempted go first (only under a flood of names). */
const MAX_SUBJECTS = 100_000;

/**
 * The attempts of every subject, folded from `taskmanager.users` in log order: an attempt is admitted when fewer than
 * its `max` attempts of the subject, admitted and not released, fall in its window before it. Readers agree, so the
 * writer of an attempt learns from its own read-back whether every instance counts it.
 */
export class AttemptLedger {
  private readonly subjects = new Map<string, Subject>();

  constructor(private readonly logger: Logger) {}

  onRecord(key: string, r: InRecord): AttemptOutcome {
    if (r.value === null) {
      this.subjects.delete(key);
      return { kind: 'released' };
    }
    let data: unknown;
    try {
      data = JSON.parse(r.value.toString('utf8'));
    } catch {
      data = undefined;
    }
    if (isAttempt(data)) return this.attempt(key, data, r.headers[WRITER_HEADER]);
    if (isRelease(data)) {
      const s = this.subjects.get(key);
      if (s) s.counted = data.all ? [] : s.counted.filter((a) => a.id !== data.id);
      return { kind: 'released' };
    }
    this.logger.warn(`ignoring ${r.topic}/${r.partition}@${r.offset}: not an attempt record for key ${key}`);
    return { kind: 'ignored' };
  }

  /** Attempts of the subject counted at `now`, and when the oldest of them stops counting. */
  count(key: string, now: number): { count: number; freeAt: number } {
    const s = this.subjects.get(key);
    if (!s) return { count: 0, freeAt: now };
    const live = s.counted.filter((a) => a.at > now - s.windowMs);
    return { count: live.length, freeAt: Math.min(now, ...live.map((a) => a.at)) + s.windowMs };
  }

  /**
   * Subjects with no attempt for `graceMs` past their window, whose last record `writer` wrote (or anyone's, after
   * twice that): their key can be removed from the topic.
   */
  idle(now: number, writer: string, graceMs: number): string[] {
    const out: string[] = [];
    for (const [key, s] of this.subjects) {
      const idleFor = now - s.lastAt - s.windowMs;
      if (idleFor > 2 * graceMs || (idleFor > graceMs && s.lastWriter === writer)) out.push(key);
    }
    return out;
  }

  private attempt(key: string, a: AttemptRecord, writer: string | undefined): AttemptOutcome {
    const s = this.subjects.get(key) ?? {
      counted: [],
      windowMs: a.windowMs,
      lastAt: a.at,
      lastWriter: writer,
    };
    s.windowMs = a.windowMs;
    s.counted = s.counted.filter((c) => c.at > a.at - a.windowMs);
    s.lastAt = Math.max(s.lastAt, a.at);
    s.lastWriter = writer;
    // Re-inserted: the map stays ordered by last attempt, so the oldest go first when it is full.
    this.subjects.delete(key);
    this.subjects.set(key, s);
    if (this.subjects.size > MAX_SUBJECTS) this.subjects.delete(this.subjects.keys().next().value!);
    if (s.counted.length >= a.max)
      return { kind: 'refused', retryAfterMs: Math.min(...s.counted.map((c) => c.at)) + a.windowMs - a.at };
    s.counted.push({ id: a.id, at: a.at });
    return { kind: 'admitted' };
  }
}
