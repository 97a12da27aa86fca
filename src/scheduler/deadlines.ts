import type { Clock, TimerHandle } from '../shared/clock.js';
import { alertRecords } from '../shared/codecs/alert-records.js';
import {
  deadlineKeyPrefix,
  deadlineTombstone,
  parseDeadlineTimer,
} from '../shared/codecs/scheduler-state.js';
import type { DeadlineTimer } from '../shared/codecs/scheduler-state.js';
import type { StatusEvent } from '../shared/codecs/task-event.js';
import type { SchedulerOrigin } from '../shared/codecs/task-message.js';
import type { ScheduleEntry } from '../shared/config/schema.js';
import { errorMessage } from '../shared/errors.js';
import type { InRecord, KafkaClient, OutRecord } from '../shared/kafka/index.js';
import { sleep } from '../shared/clock.js';
import { EVENTS_TOPIC, SCHEDULED_BATCH_HEADER } from '../shared/codecs/task-event.js';
import type { Logger } from '../shared/logger.js';
import type { Alert } from '../shared/schedule/alerts.js';
import type { Fire } from './fire-loop.js';

/**
 * Events are followed from this long before the earliest pending timer's fire: the SCHEDULED event's timestamp is
 * taken when the transaction is sent, after `firedAt`, but another host's clock (a consumer's) may be behind.
 */
export const DEADLINE_FOLLOW_MARGIN_MS = 60_000;
/** How long one look waits for the follower to read through what was written before it. */
const READ_THROUGH_WAIT_MS = 5000;
/** The longest wait between two looks at the pending timers while some are due and not yet decided. */
const CHECK_EVERY_MS = 1000;

/**
 * The deadline timer a fire arms, none for a schedule without `deadlineSeconds`, a trigger or a backfill (those are
 * of no instant of the schedule's own).
 */
export function deadlineTimerOf(fire: Fire, firedAtMs: number): DeadlineTimer | undefined {
  const seconds = fire.entry.alerts?.deadlineSeconds;
  if (seconds === undefined || fire.manual || fire.backfill) return undefined;
  const scheduledFor = new Date(fire.scheduledFor).toISOString();
  return {
    v: 1,
    kind: 'deadline',
    taskId: `${fire.entry.id}@${scheduledFor}`,
    scheduleId: fire.entry.id,
    scheduledFor,
    firedAt: new Date(firedAtMs).toISOString(),
    dueAt: new Date(fire.scheduledFor + seconds * 1000).toISOString(),
    topic: fire.entry.topic,
    deadlineSeconds: seconds,
  };
}

/** What the run of a pending timer last did, from its status events. */
interface RunSeen {
  status: StatusEvent['status'];
  attempt: number;
  final: boolean;
  atMs: number;
}

interface Pending {
  timer: DeadlineTimer;
  partition: number;
  dueMs: number;
  firedMs: number;
  last?: RunSeen;
  /** When its FINISHED event says it finished. */
  finishedMs?: number;
}

/** A follower of `taskmanager.events` (read_committed) from some time on. */
export interface EventFollower {
  /** Where it started: every event written from then on reaches it. */
  readonly fromMs: number;
  /**
   * Resolves to true once it read every event committed before the call (the topic's end offsets measured then),
   * false when it could not within a while (it is asked again).
   */
  readThroughNow(): Promise<boolean>;
  stop(): Promise<void>;
}

export interface DeadlineTimersOptions {
  group: string;
  clock: Clock;
  logger: Logger;
  scheduler: SchedulerOrigin;
  /** The entry of a schedule Id, when this instance has it. */
  entry(id: string): ScheduleEntry | undefined;
  /**
   * Writes records in one transaction of the active owner of `partition`, resolving once committed; undefined when
   * the partition is not active here. `written` tells, after the partition's state was read again (a transaction
   * in doubt), whether they are committed already: not sent again then.
   */
  publish(
    partition: number,
    records: readonly OutRecord[],
    written: () => boolean,
  ): Promise<void> | undefined;
  /** Starts following the events topic from `fromMs` (read_committed), handing each record to `onRecord`. */
  follow(fromMs: number, onRecord: (r: InRecord) => void): Promise<EventFollower>;
  /** The status events of a record of the events topic (one, or a batch of SCHEDULED). */
  parseEvents(value: Buffer | null, headers: Readonly<Record<string, string>>): StatusEvent[];
  /** A deadline alert was committed. */
  onAlerted?(scheduleId: string): void;
}

/**
 * The `deadline` alerts of the state partitions this instance owns (docs/schedule-file.md#alerts). A fire of a
 * schedule with `deadlineSeconds` arms a timer record on its state partition in the transaction that publishes it;
 * every record of the state topic read here (takeover reads) and every fire committed here keeps this view of the
 * timers up to date, per partition. For the partitions active here, and only while one of them has a timer
 * pending, the status events are followed from the earliest pending fire on; a run whose FINISHED event says it
 * finished by the timer's due time clears the timer (a tombstone). At the due time, once the events were read
 * through a moment past it, a run not FINISHED raises the alert: its records and the timer's tombstone go in ONE
 * transaction of the partition's fenced producer, so an owner that dies before committing leaves the timer to the
 * next owner, whose alert is the same (`alert/<id>/deadline@<instant>`), and one that committed leaves none.
 */
export class DeadlineTimers {
  private readonly byTaskId = new Map<string, Pending>();
  private readonly active = new Set<number>();
  /** Per state partition, the offset after the last record read. */
  private readonly readTo = new Map<number, bigint>();
  private readonly prefix: string;
  private follower: EventFollower | undefined;
  private following: Promise<void> = Promise.resolve();
  private timer: TimerHandle | undefined;
  private checking = false;
  private stopped = false;

  constructor(private readonly o: DeadlineTimersOptions) {
    this.prefix = deadlineKeyPrefix(o.group);
  }

  /** Timers known (pending), on every partition read here. */
  get size(): number {
    return this.byTaskId.size;
  }

  /** The pending timers of the partitions active here. */
  pendingActive(): DeadlineTimer[] {
    return [...this.byTaskId.values()].filter((p) => this.active.has(p.partition)).map((p) => p.timer);
  }

  /**
   * A batch of the state topic starts at `firstOffset`. Read again from an earlier offset (a new assignment reads a
   * partition from its start): the timers of the partition are forgotten and read again, so a timer that another
   * owner deleted meanwhile, and that compaction removed with its tombstone, is not kept from an earlier read.
   */
  reading(partition: number, firstOffset: bigint, lastOffset: bigint): void {
    const readTo = this.readTo.get(partition);
    if (readTo !== undefined && firstOffset < readTo)
      for (const [taskId, p] of this.byTaskId) if (p.partition === partition) this.byTaskId.delete(taskId);
    this.readTo.set(partition, lastOffset + 1n);
  }

  /**
   * A record of the state topic: true when it is a deadline timer (armed, or deleted by its tombstone), which then
   * updates this view; false for anything else (an entry's state).
   */
  foldRecord(partition: number, key: string, value: Buffer | null): boolean {
    if (!key.startsWith(this.prefix)) return false;
    const taskId = key.slice(this.prefix.length);
    if (value === null) {
      this.byTaskId.delete(taskId);
      return true;
    }
    const timer = parseDeadlineTimer(value);
    if (!timer) return false;
    this.add(partition, timer);
    return true;
  }

  /** Fires committed on `partition` at `firedAtMs`: the timers their transaction armed. */
  armed(partition: number, fires: readonly Fire[], firedAtMs: number): void {
    let any = false;
    for (const f of fires) {
      const timer = deadlineTimerOf(f, firedAtMs);
      if (!timer) continue;
      this.add(partition, timer);
      any = true;
    }
    if (any && this.active.has(partition)) this.changed();
  }

  /** The partition was taken over here (its state read): its timers are this instance's to decide. */
  activate(partition: number): void {
    this.active.add(partition);
    this.changed();
  }

  /**
   * The partition is no longer owned here: its timers are left to its next owner. The view of them is kept: a
   * re-take of a partition still assigned here reads on from where it stopped (a new assignment reads it from its
   * start, see {@link reading}).
   */
  release(partition: number): void {
    if (this.active.delete(partition)) this.changed();
  }

  /** A record of the events topic. */
  onEventRecord(r: InRecord): void {
    if (r.headers[SCHEDULED_BATCH_HEADER] !== undefined) {
      // SCHEDULED events of many fires, keyed by the first one's taskId.
      for (const e of this.o.parseEvents(r.value, r.headers)) {
        const p = this.byTaskId.get(e.taskId);
        if (p) this.onEvent(p, e);
      }
      return;
    }
    const key = r.key?.toString('utf8');
    const p = key === undefined ? undefined : this.byTaskId.get(key);
    if (!p) return;
    for (const e of this.o.parseEvents(r.value, r.headers))
      if (e.taskId === p.timer.taskId) this.onEvent(p, e);
  }

  /** Stops following and checking. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await this.following.catch(() => undefined);
    const f = this.follower;
    this.follower = undefined;
    await f?.stop();
  }

  /** Arms a timer; one known already (read again, or armed here and then read) keeps what its run was seen doing. */
  private add(partition: number, timer: DeadlineTimer): void {
    const known = this.byTaskId.get(timer.taskId);
    const at = { timer, partition, dueMs: Date.parse(timer.dueAt), firedMs: Date.parse(timer.firedAt) };
    if (known) Object.assign(known, at);
    else this.byTaskId.set(timer.taskId, at);
  }

  private onEvent(p: Pending, e: StatusEvent): void {
    const atMs = Date.parse(e.at);
    if (e.status === 'ALERT') return;
    // A batch of SCHEDULED events is on another partition than the run's later events: it may come after them.
    if (e.status === 'SCHEDULED' && p.last) return;
    if (e.status === 'FINISHED') p.finishedMs = Math.min(p.finishedMs ?? Infinity, atMs);
    const status = e.status === 'PROGRESS' ? 'EXECUTING' : e.status;
    p.last = { status, attempt: e.attempt, final: e.final === true, atMs };
    if (p.finishedMs !== undefined && p.finishedMs <= p.dueMs) this.soon();
  }

  /** The set of timers or partitions changed: follow the events as far back as needed, and look again. */
  private changed(): void {
    if (this.stopped) return;
    this.refollow();
    this.soon();
  }

  /** Starts, restarts or stops the follower, after what it is doing now. */
  private refollow(): void {
    this.following = this.following
      .then(() => this.follow())
      .catch((err: unknown) => {
        this.o.logger.error(`deadline alerts: following the status events failed: ${errorMessage(err)}`);
      });
  }

  private async follow(): Promise<void> {
    const pending = [...this.byTaskId.values()].filter((p) => this.active.has(p.partition));
    if (pending.length === 0) {
      const f = this.follower;
      this.follower = undefined;
      await f?.stop();
      return;
    }
    const from = Math.min(...pending.map((p) => p.firedMs)) - DEADLINE_FOLLOW_MARGIN_MS;
    if (this.follower && this.follower.fromMs <= from) return;
    // An earlier timer (taken over from another owner): its events are before where the follower started.
    const old = this.follower;
    this.follower = undefined;
    await old?.stop();
    if (this.stopped) return;
    this.follower = await this.o.follow(from, (r) => this.onEventRecord(r));
    if (this.stopped) await this.follower.stop();
  }

  /** Looks at the timers at the earliest due time, at most a second from now while some are pending. */
  private soon(delayMs = 0): void {
    if (this.stopped) return;
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = undefined;
      void this.check();
    }, delayMs);
  }

  private rearm(): void {
    const pending = [...this.byTaskId.values()].filter((p) => this.active.has(p.partition));
    if (pending.length === 0) return;
    const now = this.o.clock.now();
    const earliest = Math.min(...pending.map((p) => p.dueMs));
    this.soon(Math.max(0, Math.min(earliest - now, CHECK_EVERY_MS)));
  }

  /** Clears timers whose run FINISHED in time, and decides the due ones. */
  async check(): Promise<void> {
    if (this.checking || this.stopped) return;
    this.checking = true;
    try {
      await this.following;
      const now = this.o.clock.now();
      const pending = [...this.byTaskId.values()].filter((p) => this.active.has(p.partition));
      const inTime = pending.filter((p) => p.finishedMs !== undefined && p.finishedMs <= p.dueMs);
      const due = pending.filter((p) => !inTime.includes(p) && p.dueMs <= now);
      // A run may have FINISHED just before its due time: decide only once every event written until now was read.
      const decided = due.length > 0 && this.follower ? await this.follower.readThroughNow() : false;
      const decisions: Array<{ p: Pending; records: OutRecord[] }> = inTime.map((p) => ({ p, records: [] }));
      // Decided again for a FINISHED that came while the events were read through.
      if (decided)
        for (const p of due)
          decisions.push({
            p,
            records: (p.finishedMs ?? Infinity) <= p.dueMs ? [] : this.alertRecordsOf(p, now),
          });
      // Each timer's alert with its tombstone, in one transaction (the owner may put several timers in one).
      await Promise.all(decisions.map((d) => this.commit(d.p, d.records)));
    } finally {
      this.checking = false;
      // No follower while timers are pending (its start failed), or one while none are: see to it.
      const pending = this.pendingActive().length > 0;
      if (pending !== (this.follower !== undefined)) this.refollow();
      this.rearm();
    }
  }

  private async commit(p: Pending, alert: OutRecord[]): Promise<void> {
    const { taskId, scheduleId } = p.timer;
    const records = [...alert, deadlineTombstone(this.o.group, p.partition, taskId)];
    // Committed when the state read again no longer has the timer (its tombstone is there).
    const sent = this.o.publish(p.partition, records, () => !this.byTaskId.has(taskId));
    if (!sent) return;
    try {
      await sent;
    } catch (err) {
      if (alert.length > 0)
        this.o.logger.error(
          `deadline alert of ${taskId} not written (${errorMessage(err)}); it is tried again`,
          {
            scheduleId,
            partition: p.partition,
          },
        );
      return;
    }
    // An instant fires once: its timer is never armed again (a read from the start reads its tombstone too).
    this.byTaskId.delete(taskId);
    if (alert.length === 0) return;
    this.o.onAlerted?.(scheduleId);
    this.o.logger.warn(`deadline alert raised: ${taskId} ${reasonOf(p)}`, { scheduleId });
  }

  /** The alert's records, none when its schedule no longer asks for deadline alerts here. */
  private alertRecordsOf(p: Pending, nowMs: number): OutRecord[] {
    const entry = this.o.entry(p.timer.scheduleId);
    if (entry?.alerts?.deadlineSeconds === undefined) return [];
    const alert: Alert = {
      kind: 'deadline',
      scheduleId: p.timer.scheduleId,
      taskId: p.timer.taskId,
      scheduledFor: p.timer.scheduledFor,
      reason: reasonOf(p),
      at: new Date(nowMs).toISOString(),
      group: this.o.group,
    };
    const s = this.o.scheduler;
    return alertRecords(
      alert,
      entry.alerts,
      p.timer.topic,
      { host: s.host, pid: s.pid, role: 'scheduler' },
      s,
    );
  }
}

/** `not FINISHED 30 s after its instant: EXECUTING attempt 1` (the run's last known state). */
function reasonOf(p: Pending): string {
  return `not FINISHED ${p.timer.deadlineSeconds} s after its instant: ${lastStateOf(p)}`;
}

function lastStateOf(p: Pending): string {
  const last = p.last;
  if (!last) return 'no run started';
  if (p.finishedMs !== undefined)
    return `FINISHED ${((p.finishedMs - p.dueMs) / 1000).toFixed(1)} s after the deadline`;
  switch (last.status) {
    case 'SCHEDULED':
      return 'no run started (SCHEDULED)';
    case 'FAILED':
      return last.final
        ? `FAILED for good (attempt ${last.attempt})`
        : `FAILED attempt ${last.attempt}, retrying`;
    default:
      return `${last.status} attempt ${last.attempt}`;
  }
}

/**
 * Follows `taskmanager.events` (read_committed) from `fromMs` on. It has read through a moment once its position on
 * every partition reached the end offsets measured then (transaction markers included).
 */
export async function followEvents(
  kafka: Pick<KafkaClient, 'follow' | 'endOffsets'>,
  clock: Clock,
  fromMs: number,
  onRecord: (r: InRecord) => void,
): Promise<EventFollower> {
  const follower = await kafka.follow(EVENTS_TOPIC, onRecord, { fromTimestamp: fromMs });
  const readThrough = (ends: ReadonlyMap<number, bigint>): boolean =>
    [...ends].every(([p, end]) => end === 0n || (follower.position(p) ?? 0n) >= end);
  return {
    fromMs,
    readThroughNow: async () => {
      const ends = await kafka.endOffsets(EVENTS_TOPIC);
      const until = clock.now() + READ_THROUGH_WAIT_MS;
      while (!readThrough(ends)) {
        if (clock.now() >= until) return false;
        await sleep(clock, 50);
      }
      return true;
    },
    stop: () => follower.stop(),
  };
}
