import type { Clock, TimerHandle } from '../../../src/shared/clock.js';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A clock tests drive by hand. Timers fire in `advance` when their time comes; the wall clock can also be set
 * or stepped back, and a timer can be made to wake early, as real ones do.
 */
export class FakeClock implements Clock {
  private timers: Timer[] = [];
  private seq = 0;
  /** Added to the due time of timers longer than 1 ms (negative: they wake that many ms early, as real ones can). */
  timerSkewMs = 0;

  constructor(private nowMs: number) {}

  now(): number {
    return this.nowMs;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t = { id: ++this.seq, at: this.nowMs + Math.max(0, ms) + (ms > 1 ? this.timerSkewMs : 0), fn };
    this.timers.push(t);
    return { id: t.id };
  }

  clearTimeout(h: TimerHandle): void {
    this.timers = this.timers.filter((t) => t.id !== h.id);
  }

  /** Moves time forward by `ms`, running every timer that comes due, in order. */
  advance(ms: number): void {
    const end = this.nowMs + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.nowMs = Math.max(this.nowMs, next.at);
      next.fn();
    }
    this.nowMs = end;
  }

  /** Steps the wall clock without running timers (NTP step, VM resume). */
  set(ms: number): void {
    const delta = ms - this.nowMs;
    this.nowMs = ms;
    // Pending timers keep their remaining delay (they run on a monotonic clock).
    for (const t of this.timers) t.at += delta;
  }

  get pendingTimers(): number {
    return this.timers.length;
  }

  maxPendingDelay(): number {
    return Math.max(0, ...this.timers.map((t) => t.at - this.nowMs));
  }
}
