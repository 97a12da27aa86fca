import type { Clock, TimerHandle } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { ScheduleEntry } from '../shared/config/schema.js';
import { JitteredSchedule, scheduleTimes } from '../shared/schedule/jitter.js';
import type { CompiledSchedule } from '../shared/schedule/compiled.js';
import { MinHeap } from '../shared/heap.js';
import { MAX_EXCLUDED_SKIPS } from '../shared/schedule/calendar.js';
import { expiredGap } from './misfire.js';
import type { DroppedInstants } from './misfire.js';

/** One instant of one entry that came due. */
export interface Fire {
  readonly entry: ScheduleEntry;
  /** The scheduled (nominal) instant, epoch ms: the taskId's. */
  readonly scheduledFor: number;
  /** When it was due, for an entry with jitter: `scheduledFor` plus its delay (docs/schedule-file.md#jitter). */
  readonly dueAt?: number;
  /**
   * Fired by `taskscheduler trigger` or a backfill, not by the fire loop: it does not move the entry's last fired
   * instant nor count as a run.
   */
  readonly manual?: boolean;
  /** A manual fire of a backfill: an instant of the spec in the past that had no task (scheduler/backfill.ts). */
  readonly backfill?: boolean;
  /** For an entry with MaxRuns: which of its runs this is (1 for the first); its state record counts it. */
  readonly run?: number;
}

/**
 * Per-entry state kept small (a scheduler may arm a million API tasks): the entry, its compiled spec (inside its
 * window), the next fire and the last fired instant. Numbers that fit a small integer (`delay`, `runs`) cost no
 * allocation of their own, so an entry without jitter or MaxRuns weighs what it did before they existed.
 */
interface Armed {
  entry: ScheduleEntry;
  cron: CompiledSchedule;
  /** The next nominal instant. */
  next: number;
  /** Its jitter delay in ms: it is due at `next + delay` (the heap's order). */
  delay: number;
  /** Last nominal instant handed out; an instant at or before it is never fired again. */
  last: number;
  /** Fires handed out, counting those its state records had (for MaxRuns). */
  runs: number;
  removed: boolean;
}

/** An entry's fire times: its spec in its zone, inside its window, off its calendars' dates, with its jitter. */
export function timesOf(e: ScheduleEntry): JitteredSchedule {
  return scheduleTimes(e.spec, e, e.id, e.excluded);
}

/**
 * The fire of nominal instant `t` of `e`, due at `due` (said only when jitter delays it), the entry's run number
 * `run` (said only when it has MaxRuns).
 */
export function fireOf(e: ScheduleEntry, t: number, due: number, run: number): Fire {
  // The firing path of every fire: an entry with neither option gets the plain fire it always did.
  if (!e.jitter && e.maxRuns === undefined) return { entry: e, scheduledFor: t };
  return {
    entry: e,
    scheduledFor: t,
    ...(e.jitter ? { dueAt: due } : {}),
    ...(e.maxRuns === undefined ? {} : { run }),
  };
}

/** Why a schedule with calendars may have no next instant: its calendars exclude every one the search looked at. */
function noteOfCalendars(e: ScheduleEntry): string {
  if (!e.excluded) return '';
  return ` off the dates of its calendars (${e.excluded.names.join(', ')}) within the next ${MAX_EXCLUDED_SKIPS} excluded instants`;
}

/** Whether an entry with `runs` fires counted has used up its MaxRuns. */
export function limitReached(e: ScheduleEntry, runs: number): boolean {
  return e.maxRuns !== undefined && runs >= e.maxRuns;
}

export interface FireLoopOptions {
  clock: Clock;
  logger: Logger;
  /** Receives every due fire, in scheduled order per entry; must not throw and must return quickly. */
  onFires(fires: Fire[]): void;
  /** An entry's overdue fire times older than its misfire window were dropped (once per gap, with what it held). */
  onDropped?(entry: ScheduleEntry, dropped: DroppedInstants): void;
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
  private readonly heap = new MinHeap<Armed>((a) => a.next + a.delay);
  private readonly byId = new Map<string, Armed>();
  /**
   * Entries this loop stopped at their MaxRuns, with their count: re-adding one (a reload) before its last fire is
   * acknowledged must not arm it again from an older count.
   */
  private readonly ended = new Map<string, number>();
  private timer: TimerHandle | undefined;
  /** When `timer` wakes (epoch ms). */
  private timerDueMs = Infinity;
  private running = false;
  private readonly maxSleepMs: number;

  constructor(private readonly options: FireLoopOptions) {
    this.maxSleepMs = options.maxSleepMs ?? 1000;
  }

  get size(): number {
    return this.byId.size;
  }

  /**
   * Arms an entry to fire its instants after `afterMs` (default: now) and after `known.lastFiredMs` (its last fired
   * instant, when known): the first is the first instant after the latter that is due after the former.
   * `known.runs`: the fires its state records counted (for MaxRuns). Re-adding an id replaces it; its last fired
   * instant and count are kept so a changed entry never re-fires an instant nor starts counting again.
   */
  add(entry: ScheduleEntry, afterMs?: number, known: { lastFiredMs?: number; runs?: number } = {}): void {
    const previous = this.byId.get(entry.id);
    if (previous) this.remove(entry.id);
    if (!entry.enabled) return;
    const runs = Math.max(known.runs ?? 0, previous?.runs ?? 0, this.ended.get(entry.id) ?? 0) | 0;
    if (limitReached(entry, runs)) return;
    const times = timesOf(entry);
    const from = afterMs ?? this.options.clock.now();
    const lastNominal = Math.max(known.lastFiredMs ?? -Infinity, previous?.last ?? -Infinity);
    const first = times.firstDueAfter(lastNominal, from);
    if (first === undefined) {
      // A one-shot entry after its instant, or one past its EndAt, is simply done; any other spec without a future
      // is worth a warning.
      if (entry.spec.kind !== 'once' && entry.endAt === undefined)
        this.options.logger.warn(
          `schedule ${entry.id} has no future fire time${noteOfCalendars(entry)}; it will not fire`,
          {
            scheduleId: entry.id,
          },
        );
      return;
    }
    // Without jitter `last` is `from` as it always was; with it, an instant before `from` may still be due.
    const last = Math.max(lastNominal, Math.min(from, first.nominal - 1));
    const armed: Armed = {
      entry,
      cron: times.compiled,
      next: first.nominal,
      // `| 0`: kept a small integer (at most a day of ms), never a boxed double.
      delay: (first.due - first.nominal) | 0,
      last,
      runs,
      removed: false,
    };
    this.byId.set(entry.id, armed);
    this.heap.push(armed);
    // The timer is set again only for an entry due before it wakes (a tick sets it for what comes next anyway):
    // adding a thousand one-shots due later costs no timer each.
    if (this.running && !(this.timer && armed.next + armed.delay >= this.timerDueMs)) this.rearm();
  }

  /**
   * The last nominal instant handed out for an armed entry (undefined when it is not armed): the loop never fires
   * an instant at or before it, whatever happens next, as long as the entry stays armed.
   */
  lastHandedOut(id: string): number | undefined {
    return this.byId.get(id)?.last;
  }

  /** Stops firing an entry. Lazy: the heap drops it when it reaches the top. */
  remove(id: string): boolean {
    this.ended.delete(id);
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
    const now = this.options.clock.now();
    const delay = top ? Math.min(Math.max(0, top.next + top.delay - now), this.maxSleepMs) : this.maxSleepMs;
    this.timerDueMs = now + delay;
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
      for (let top = this.heap.peek(); top && top.next + top.delay <= now; top = this.heap.peek()) {
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

  /**
   * Takes the due instant of one entry, or drops it when it was due longer ago than the entry's misfire window
   * (from when it was due: jitter does not make a fire late).
   */
  private take(a: Armed, now: number, out: Fire[]): void {
    if (a.next <= a.last) return;
    a.last = a.next;
    const windowStart = now - a.entry.misfireWindowSeconds * 1000;
    const due = a.next + a.delay;
    if (due >= windowStart) {
      out.push(fireOf(a.entry, a.next, due, ++a.runs));
      return;
    }
    this.options.logger.warn(
      `schedule ${a.entry.id}: fire times before ${new Date(windowStart).toISOString()} are older than ` +
        `MisfireWindowSeconds (${a.entry.misfireWindowSeconds}) and were dropped`,
      { scheduleId: a.entry.id, firstDropped: new Date(a.next).toISOString() },
    );
    // Skip the gap in one step rather than firing it instant by instant.
    const gap = expiredGap(a.cron, a.next - 1, windowStart - 1);
    if (gap) this.options.onDropped?.(a.entry, gap);
    a.last = Math.max(a.last, windowStart - 1);
  }

  private advance(a: Armed): void {
    const ended = limitReached(a.entry, a.runs);
    if (ended) this.ended.set(a.entry.id, a.runs);
    const next = ended ? undefined : a.cron.nextAfter(a.last);
    if (next === undefined) {
      this.byId.delete(a.entry.id);
      return;
    }
    a.next = next;
    // Jitter is computed per fire, only for entries that have it (the loop keeps no wrapper per entry).
    a.delay = a.entry.jitter
      ? (new JitteredSchedule(a.cron, a.entry.id, a.entry.jitter).dueOf(next) - next) | 0
      : 0;
    this.heap.push(a);
  }
}
