import type { Clock, TimerHandle } from '../shared/clock.js';

/** One attempt whose EXECUTING event waits for the threshold. */
export interface LateStart {
  readonly startedMs: number;
  /** Writes the attempt's EXECUTING event; called at most once. */
  readonly write: () => void;
}

/**
 * `--executing-after-ms`: an attempt's EXECUTING event is written only once the attempt has run that long (at once
 * when it is 0), so a short run writes its final event alone. One timer for all attempts, not one per attempt: the
 * attempts are kept in the order they started, and the timer is set for the oldest one's turn.
 */
export class LateStarts {
  /** The attempts still waiting, in start order (a Set keeps insertion order). */
  private readonly waiting = new Set<LateStart>();
  private timer: TimerHandle | undefined;

  constructor(
    private readonly clock: Clock,
    readonly afterMs: number,
  ) {}

  /** An attempt started at `startedMs`: its EXECUTING is written now (threshold 0) or at its turn. */
  add(startedMs: number, write: () => void): LateStart | undefined {
    if (this.afterMs <= 0) {
      write();
      return undefined;
    }
    const s: LateStart = { startedMs, write };
    this.waiting.add(s);
    this.timer ??= this.clock.setTimeout(() => this.due(), this.afterMs);
    return s;
  }

  /**
   * Writes the EXECUTING of an attempt still waiting for its turn now (a PROGRESS event is about to follow it, or
   * a reader would fold that progress into a run it does not know started).
   */
  now(s: LateStart | undefined): void {
    if (s && this.waiting.delete(s)) s.write();
  }

  /** The attempt ended: its EXECUTING, when not written yet, never is (the final event says when it started). */
  end(s: LateStart | undefined): void {
    if (s) this.waiting.delete(s);
  }

  /** Attempts whose EXECUTING still waits. */
  get size(): number {
    return this.waiting.size;
  }

  private due(): void {
    this.timer = undefined;
    const now = this.clock.now();
    for (const s of this.waiting) {
      const wait = s.startedMs + this.afterMs - now;
      if (wait > 0) {
        this.timer = this.clock.setTimeout(() => this.due(), wait);
        return;
      }
      this.waiting.delete(s);
      s.write();
    }
  }
}
