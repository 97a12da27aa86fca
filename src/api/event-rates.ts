import type { Clock } from '../shared/clock.js';
import type { StatusEvent } from '../shared/codecs/task-event.js';

/** One second of `taskmanager.events`. */
interface Bucket {
  fired: number;
  finished: number;
  failed: number;
  lagSumMs: number;
  lagMaxMs: number;
}

/** Per second, oldest first, over the window: what the dashboard charts. */
export interface RateSeries {
  /** Start of the first second (ISO 8601); each value is one second after the previous one. */
  from: string;
  seconds: number;
  /** Tasks published by schedulers and triggers (SCHEDULED events). */
  fired: number[];
  /** Runs that finished (FINISHED events). */
  finished: number[];
  /** Attempts that failed (FAILED events, retried or dead-lettered). */
  failed: number[];
  /** Fire lag of the tasks published in that second, ms: mean and worst (0 when none). */
  fireLagMeanMs: number[];
  fireLagMaxMs: number[];
}

/** `id@2026-11-22T10:00:05.000Z` → that instant in ms, or undefined. */
function scheduledForMs(taskId: string): number | undefined {
  const at = taskId.lastIndexOf('@');
  const ms = at < 0 ? NaN : Date.parse(taskId.slice(at + 1));
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Tasks per second and fire lag over the last minutes, folded from the status events taskapi already follows.
 * They are the numbers the processes count on /metrics: a fire's lag is its SCHEDULED event's time minus the
 * instant it was due (`taskmanager_scheduler_fire_lag_seconds`), and FINISHED and FAILED are the outcomes
 * `taskmanager_consumer_tasks_total` counts. Events are bucketed by their own time, so the history read at start
 * fills the charts at once.
 */
export class EventRates {
  private readonly buckets = new Map<number, Bucket>();

  constructor(
    private readonly clock: Clock,
    readonly windowSeconds = 300,
  ) {}

  add(e: StatusEvent): void {
    const at = Date.parse(e.at);
    if (Number.isNaN(at)) return;
    const second = Math.floor(at / 1000);
    const now = Math.floor(this.clock.now() / 1000);
    if (second < now - this.windowSeconds || second > now + 5) return;
    let b = this.buckets.get(second);
    if (!b) {
      this.buckets.set(second, (b = { fired: 0, finished: 0, failed: 0, lagSumMs: 0, lagMaxMs: 0 }));
      if (this.buckets.size > this.windowSeconds * 2) this.prune(now);
    }
    if (e.status === 'SCHEDULED') {
      b.fired++;
      const due = scheduledForMs(e.taskId);
      const lag = due === undefined ? 0 : Math.max(0, at - due);
      b.lagSumMs += lag;
      b.lagMaxMs = Math.max(b.lagMaxMs, lag);
    } else if (e.status === 'FINISHED') b.finished++;
    else if (e.status === 'FAILED') b.failed++;
  }

  /** The last `windowSeconds` whole seconds, the one under way left out (it is still filling). */
  series(): RateSeries {
    const now = Math.floor(this.clock.now() / 1000);
    this.prune(now);
    const first = now - this.windowSeconds;
    const s: RateSeries = {
      from: new Date(first * 1000).toISOString(),
      seconds: this.windowSeconds,
      fired: [],
      finished: [],
      failed: [],
      fireLagMeanMs: [],
      fireLagMaxMs: [],
    };
    for (let t = first; t < now; t++) {
      const b = this.buckets.get(t);
      s.fired.push(b?.fired ?? 0);
      s.finished.push(b?.finished ?? 0);
      s.failed.push(b?.failed ?? 0);
      s.fireLagMeanMs.push(b && b.fired > 0 ? Math.round(b.lagSumMs / b.fired) : 0);
      s.fireLagMaxMs.push(b?.lagMaxMs ?? 0);
    }
    return s;
  }

  private prune(now: number): void {
    for (const t of this.buckets.keys()) if (t < now - this.windowSeconds) this.buckets.delete(t);
  }
}
