import { createHmac, randomUUID } from 'node:crypto';
import type { Clock } from '../../shared/clock.js';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { ApiError } from '../problem.js';
import { ATTEMPTS_PREFIX } from './attempt-ledger.js';
import type { AttemptLedger, AttemptOutcome, AttemptRecord, ReleaseRecord } from './attempt-ledger.js';

export interface LoginLimits {
  /** Failed logins per (user name, address) in `windowMs`. @default 5 */
  perUserAndAddress: number;
  /** Failed logins per user name, from all addresses together. @default 10 */
  perUser: number;
  /** Failed logins per address, whatever the names. @default 20 */
  perAddress: number;
  /** @default 15 min */
  windowMs: number;
  /** Sign-ups per address in `signupWindowMs`, whether the name was free or not. @default 5 */
  signupsPerAddress: number;
  /** @default 1 h */
  signupWindowMs: number;
  /** Password hashes at once (logins, sign-ups, password changes, new users); more are answered 503 at once. @default 2 */
  concurrentHashes: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = {
  perUserAndAddress: 5,
  perUser: 10,
  perAddress: 20,
  windowMs: 15 * 60_000,
  signupsPerAddress: 5,
  signupWindowMs: 60 * 60_000,
  concurrentHashes: 2,
};

/** Where the attempts live: the ledger every instance folds from `taskmanager.users`, and writes to it. */
export interface AttemptLog {
  readonly ledger: AttemptLedger;
  /** This instance's writer id (the `tm-writer` header of its records). */
  readonly writerId: string;
  /** Appends a record (null: removes the subject) and resolves once this instance folded it. */
  write(key: string, value: AttemptRecord | ReleaseRecord | null): Promise<AttemptOutcome>;
}

export interface LoginLimiterOptions {
  log: AttemptLog;
  clock: Clock;
  logger: Logger;
  /** Keys the HMAC that names subjects; instances that share it share their counts (see subjectSecret). */
  secret: Buffer;
  limits?: Partial<LoginLimits>;
}

/** A limit on one subject: its key in the topic, how many attempts, over which window. */
interface Rule {
  key: string;
  max: number;
  windowMs: number;
}

/** How long before a subject with no attempts left in its window is removed from the topic. */
const IDLE_GRACE_MS = 60_000;

function tooMany(what: string, ms: number): ApiError {
  const retryAfter = Math.max(1, Math.ceil(ms / 1000));
  return new ApiError(429, `too many ${what}: try again in ${retryAfter} s`, undefined, {
    'retry-after': String(retryAfter),
  });
}

/**
 * Limits logins and sign-ups across every instance that shares `taskmanager.users` (and the signing key). Each
 * attempt is written to the topic under each of its subjects and counted before its password is hashed; the log
 * orders the attempts of a subject, so every instance admits the same ones and a limit holds for all of them
 * together, not per instance. A login that succeeds is un-counted (and clears its user-and-address failures), so
 * the limits count failures. Hashing runs `concurrentHashes` at a time: scrypt takes libuv's threads, which DNS
 * lookups (Kafka's) need too, so attempts beyond that are answered 503 at once instead of queued.
 */
export class LoginLimiter {
  private readonly limits: LoginLimits;
  /** Attempts of this instance written but not yet read back, per subject: counted at once. */
  private readonly pending = new Map<string, number>();
  private hashing = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: LoginLimiterOptions) {
    this.limits = { ...DEFAULT_LOGIN_LIMITS, ...o.limits };
  }

  /**
   * Runs `check` (the password check) as one counted login attempt: 429 while a limit is reached for the name, the
   * address or both; 503 while `concurrentHashes` checks run. `check` resolves to undefined for a failure.
   */
  async login<T>(name: string, address: string, check: () => Promise<T | undefined>): Promise<T | undefined> {
    const { perUserAndAddress, perUser, perAddress, windowMs } = this.limits;
    const [pair, user, from] = [
      this.rule(`pair\n${name}\n${address}`, perUserAndAddress, windowMs),
      this.rule(`user\n${name}`, perUser, windowMs),
      this.rule(`address\n${address}`, perAddress, windowMs),
    ];
    return this.counted('failed logins', [pair, user, from], async (id) => {
      const result = await check();
      // Not waited for: the answer need not wait for the un-count, which the log puts before any later attempt.
      if (result !== undefined)
        void this.release([
          [pair, { v: 1, kind: 'release', all: true }],
          [user, { v: 1, kind: 'release', id }],
          [from, { v: 1, kind: 'release', id }],
        ]);
      return result;
    });
  }

  /** Runs `create` as one counted sign-up (every one counts, made or not): 429 past the limit, 503 as for logins. */
  signup<T>(address: string, create: () => Promise<T>): Promise<T> {
    const { signupsPerAddress, signupWindowMs } = this.limits;
    return this.counted(
      'sign-ups from this address',
      [this.rule(`signup\n${address}`, signupsPerAddress, signupWindowMs)],
      create,
    );
  }

  /** Other password hashing of a request (a password change, a user made by an admin): under the same cap. */
  async hash<T>(work: () => Promise<T>): Promise<T> {
    if (this.hashing >= this.limits.concurrentHashes)
      throw new ApiError(503, 'too many password checks at once: try again in 1 s', undefined, {
        'retry-after': '1',
      });
    this.hashing++;
    try {
      return await work();
    } finally {
      this.hashing--;
    }
  }

  /** Removes subjects idle past their window from the topic, every `everyMs`. */
  start(everyMs = 60_000): void {
    this.timer ??= setInterval(() => void this.sweep(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * An attempt another instance appends to a subject just before its tombstone goes with it: one attempt, on a subject
   * that had none for a whole window.
   */
  async sweep(): Promise<void> {
    const { ledger, writerId } = this.o.log;
    for (const key of ledger.idle(this.o.clock.now(), writerId, IDLE_GRACE_MS))
      await this.o.log.write(key, null).catch((err: unknown) => {
        this.o.logger.warn(
          `cannot remove the idle attempt counter ${key} (${errorMessage(err)}); retried later`,
        );
      });
  }

  private rule(subject: string, max: number, windowMs: number): Rule {
    const digest = createHmac('sha256', this.o.secret).update(subject).digest('base64url').slice(0, 32);
    return { key: `${ATTEMPTS_PREFIX}${digest}`, max, windowMs };
  }

  /** The local check, the cap, then the attempt written under every rule and run once all of them admitted it. */
  private counted<T>(what: string, rules: Rule[], run: (id: string) => Promise<T>): Promise<T> {
    const now = this.o.clock.now();
    for (const r of rules) {
      const { count, freeAt } = this.o.log.ledger.count(r.key, now);
      const pending = this.pending.get(r.key) ?? 0;
      if (count + pending >= r.max) throw tooMany(what, count >= r.max ? freeAt - now : 1000);
    }
    return this.hash(async () => {
      const id = randomUUID();
      for (const r of rules) this.pending.set(r.key, (this.pending.get(r.key) ?? 0) + 1);
      try {
        await this.admit(what, rules, { v: 1, kind: 'attempt', id, at: now, max: 0, windowMs: 0 });
      } finally {
        for (const r of rules) {
          const left = (this.pending.get(r.key) ?? 1) - 1;
          if (left > 0) this.pending.set(r.key, left);
          else this.pending.delete(r.key);
        }
      }
      return run(id);
    });
  }

  /** Writes the attempt under each rule; when one refuses it (or a write fails), the others are released. */
  private async admit(what: string, rules: Rule[], attempt: AttemptRecord): Promise<void> {
    const outcomes = await Promise.allSettled(
      rules.map((r) => this.o.log.write(r.key, { ...attempt, max: r.max, windowMs: r.windowMs })),
    );
    const admitted = rules.filter((_, i) => {
      const o = outcomes[i]!;
      return o.status === 'fulfilled' && o.value.kind === 'admitted';
    });
    if (admitted.length === rules.length) return;
    await this.release(admitted.map((r) => [r, { v: 1, kind: 'release', id: attempt.id }]));
    let waitMs = 0;
    for (const o of outcomes) {
      if (o.status === 'rejected') throw o.reason;
      if (o.value.kind === 'refused') waitMs = Math.max(waitMs, o.value.retryAfterMs);
    }
    throw tooMany(what, waitMs);
  }

  /** Best effort: an attempt left counted only makes the limit stricter. */
  private async release(records: Array<[Rule, ReleaseRecord]>): Promise<void> {
    const results = await Promise.allSettled(records.map(([r, value]) => this.o.log.write(r.key, value)));
    for (const r of results)
      if (r.status === 'rejected')
        this.o.logger.warn(`an attempt stays counted: releasing it failed (${errorMessage(r.reason)})`);
  }
}
