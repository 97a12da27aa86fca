import type { Clock } from '../shared/clock.js';

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

function unwrap<T>(o: Outcome<T>): T {
  if (o.ok) return o.value;
  throw o.error;
}

export interface RefreshedOptions<T> {
  clock: Clock;
  /** Takes the value (asks Kafka, the schedulers, …). */
  take: () => Promise<T>;
  /** A value, or a failure, is taken again only once it is this old (counted from when it was taken). */
  everyMs: number;
  /**
   * A take that has not ended after this long fails (`no answer within … s`), so that a Kafka call that never
   * returns does not hold every caller for good; the next caller starts another. @default 15000
   */
  timeoutMs?: number;
}

/** `p`, or a failure once `ms` passed first. */
function within<T>(p: Promise<T>, ms: number, clock: Clock): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimeout(
      () => reject(new Error(`no answer within ${Math.round(ms / 1000)} s`)),
      ms,
    );
    p.then(
      (v) => {
        clock.clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clock.clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/**
 * A value taken at most once per `everyMs` however many callers ask, and never twice at once: the age counts from
 * when the last take ended (a slow one does not leave the next caller an expired value), and a failure is kept as
 * long as a value (a Kafka that does not answer is not asked again by every caller).
 */
export class Refreshed<T> {
  private last: { at: number; seq: number; outcome: Outcome<T> } | undefined;
  private running: { seq: number; done: Promise<Outcome<T>> } | undefined;
  private seq = 0;
  /** Takes started before this one are too old (see invalidate). */
  private wanted = 0;

  constructor(private readonly o: RefreshedOptions<T>) {}

  /** A value at most `everyMs` old: the one kept, or the next take's (shared with every caller waiting for it). */
  async fresh(): Promise<T> {
    const last = this.last;
    if (last && last.seq >= this.wanted && this.o.clock.now() - last.at < this.o.everyMs)
      return unwrap(last.outcome);
    return unwrap(await this.take());
  }

  /**
   * The value kept, at once; when it is `everyMs` old, one take starts for the callers after this one. Waits only
   * when there is none yet, or none taken since {@link invalidate}.
   */
  async latest(): Promise<T> {
    const last = this.last;
    if (!last || last.seq < this.wanted) return unwrap(await this.take());
    if (this.o.clock.now() - last.at >= this.o.everyMs) void this.take();
    return unwrap(last.outcome);
  }

  /** The value kept no longer counts: the next caller waits for a take started from now (after a change made here). */
  invalidate(): void {
    this.wanted = this.seq + 1;
  }

  private take(): Promise<Outcome<T>> {
    if (this.running && this.running.seq >= this.wanted) return this.running.done;
    const seq = ++this.seq;
    const done = Promise.resolve()
      .then(() => within(this.o.take(), this.o.timeoutMs ?? 15_000, this.o.clock))
      .then(
        (value): Outcome<T> => ({ ok: true, value }),
        (error: unknown): Outcome<T> => ({ ok: false, error }),
      )
      .then((outcome) => {
        // A take overtaken by a later one (after invalidate) must not replace what that one brought.
        if (!this.last || seq > this.last.seq) this.last = { at: this.o.clock.now(), seq, outcome };
        if (this.running?.seq === seq) this.running = undefined;
        return outcome;
      });
    this.running = { seq, done };
    return done;
  }
}
