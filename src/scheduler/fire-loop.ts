import type { Clock, TimerHandle } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { ScheduleEntry } from '../shared/config/schema.js';
import { compileSpec } from '../shared/schedule/spec.js';
import type { CompiledSchedule } from '../shared/schedule/compiled.js';
import { MinHeap } from '../shared/heap.js';

/** One instant of one entry that came due. */
export interface Fire {
  readonly entry: ScheduleEntry;
  /** The scheduled instant, epoch ms. */
  readonly scheduledFor: number;
  /** Fired by `taskscheduler trigger`, not by the spec: it does not move the entry's last fired instant. */
  readonly manual?: boolean;
}

/** Per-entry state kept small: the entry, its shared compiled spec, the next and last fired instants. */
interface Armed {
  entry: ScheduleEntry;
  cron: CompiledSchedule;
  next: number;
  /** Last instant handed out; an instant at or before it is never fired again. */
  last: number;
  removed: boolean;
}

export interface FireLoopOptions {
  clock: Clock;
  logger: Logger;
  /** Receives every due fire, in scheduled order per entry; must not throw and must return quickly. */
  onFires(fires: Fire[]): void;
  /** An entry's overdue fire times older than its misfire window were dropped (counted once per gap). */
  onDropped?(id: string): void;
  /**
   * The longest the loop sleeps before re-reading the clock. Bounds how late a wall-clock step forward is noticed
   * and keeps every delay far under setTimeout's 24.8-day limit. @default 1000
   */
  maxSleepMs?: number;
}

/**
 * One timer for all entries: a min-heap of next fire instants. It never fires early (a timer that wakes early
 * just re-arms), never fires an instant twice (instants only move forward per entry, whatever the clock does),
 * and fires late instants late rather than dropping them, down to each entry's misfire window.
 */
export class FireLoop {
  private readonly heap = new MinHeap<Armed>((a) => a.next);
  private readonly byId = new Map<string, Armed>();
  private timer: TimerHandle | undefined;
  private running = false;
  private readonly maxSleepMs: number;

  constructor(private readonly options: FireLoopOptions) {
    this.maxSleepMs = options.maxSleepMs ?? 1000;
  }

  get size(): number {
    return this.byId.size;
  }

  /**
   * Arms an entry to fire its instants after `afterMs` (default: now). Re-adding an id replaces it; its last fired
   * instant is kept so a changed entry never re-fires an instant.
   */
  add(entry: ScheduleEntry, afterMs?: number): void {
    const previous = this.byId.get(entry.id);
    if (previous) this.remove(entry.id);
    if (!entry.enabled) return;
    const cron = compileSpec(entry.spec, entry.timeZone);
    const last = Math.max(afterMs ?? this.options.clock.now(), previous?.last ?? -Infinity);
    const next = cron.nextAfter(last);
    if (next === undefined) {
      // A one-shot entry after its instant is simply done; any other spec without a future is worth a warning.
      if (entry.spec.kind !== 'once')
        this.options.logger.warn(`schedule ${entry.id} has no future fire time; it will not fire`, {
          scheduleId: entry.id,
        });
      return;
    }
    const armed: Armed = { entry, cron, next, last, removed: false };
    this.byId.set(entry.id, armed);
    this.heap.push(armed);
    if (this.running) this.rearm();
  }

  /** Stops firing an entry. Lazy: the heap drops it when it reaches the top. */
  remove(id: string): boolean {
    const armed = this.byId.get(id);
    if (!armed) return false;
    armed.removed = true;
    this.byId.delete(id);
    return true;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.tick();
  }

  stop(): void {
    this.running = false;
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private rearm(): void {
    if (!this.running) return;
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const top = this.heap.peek();
    if (!top) {
      this.timer = this.options.clock.setTimeout(() => this.tick(), this.maxSleepMs);
      return;
    }
    const delay = Math.min(Math.max(0, top.next - this.options.clock.now()), this.maxSleepMs);
    this.timer = this.options.clock.setTimeout(() => this.tick(), delay);
  }

  /**
   * Hands out every instant at or before now, then sleeps until the next one (or maxSleepMs). Due fires go to
   * `onFires` before any next-instant math, so the math never delays a fire; an entry that is still overdue after
   * advancing (a wake later than two of its instants) goes round again.
   */
  private tick(): void {
    this.timer = undefined;
    if (!this.running) return;
    const now = this.options.clock.now();
    for (;;) {
      const fires: Fire[] = [];
      const advanced: Armed[] = [];
      for (let top = this.heap.peek(); top && top.next <= now; top = this.heap.peek()) {
        this.heap.pop();
        if (top.removed) continue;
        this.take(top, now, fires);
        advanced.push(top);
      }
      if (fires.length > 0) this.options.onFires(fires);
      if (advanced.length === 0) break;
      for (const a of advanced) this.advance(a);
    }
    this.rearm();
  }

  /** Takes the due instant of one entry, or drops it when it is older than the entry's misfire window. */
  private take(a: Armed, now: number, out: Fire[]): void {
    if (a.next <= a.last) return;
    a.last = a.next;
    const windowStart = now - a.entry.misfireWindowSeconds * 1000;
    if (a.next >= windowStart) {
      out.push({ entry: a.entry, scheduledFor: a.next });
      return;
    }
    this.options.logger.warn(
      `schedule ${a.entry.id}: fire times before ${new Date(windowStart).toISOString()} are older than ` +
        `MisfireWindowSeconds (${a.entry.misfireWindowSeconds}) and were dropped`,
      { scheduleId: a.entry.id, firstDropped: new Date(a.next).toISOString() },
    );
    this.options.onDropped?.(a.entry.id);
    // Skip the gap in one step rather than walking it instant by instant.
    a.last = Math.max(a.last, windowStart - 1);
  }

  private advance(a: Armed): void {
    const next = a.cron.nextAfter(a.last);
    if (next === undefined) {
      this.byId.delete(a.entry.id);
      return;
    }
    a.next = next;
    this.heap.push(a);
  }
}
