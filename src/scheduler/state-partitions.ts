import type { Clock, TimerHandle } from '../shared/clock.js';
import { sleep } from '../shared/clock.js';
import { backoffDelayMs } from '../shared/backoff.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { SCHEDULER_STATE_TOPIC } from '../shared/codecs/scheduler-state.js';
import { taskIdFor } from '../shared/codecs/task-message.js';
import type { Origin } from '../shared/messages.js';
import type { GroupConsumer, KafkaClient } from '../shared/kafka/index.js';
import { catchUp } from './catch-up.js';
import { publishedTaskIds } from './backfill.js';
import type { EntryCatalog } from './entry-catalog.js';
import type { EntryStates } from './entry-states.js';
import type { Fire, FireLoop } from './fire-loop.js';
import type { SchedulerMetrics } from './metrics.js';
import { PartitionOwner } from './partition-owner.js';
import type { Tracing } from '../shared/tracing.js';
import type { ScheduledEventsForm } from './task-records.js';
import { inGoodStanding } from './readiness.js';
import { TakeoverReads } from './takeover-reads.js';
import type { DeadlineTimers } from './deadlines.js';

/**
 * After a fence, how long to wait for the rebalance that explains it before taking the partition over again, when
 * the group's coordinator does not say sooner that the partition is still this member's.
 */
export const REFENCED_GRACE_MS = 10_000;
/** How often the group's coordinator is asked meanwhile. */
const RETAKE_LOOK_MS = 500;

/**
 * Entries held only for the state partitions this instance owns (ApiTaskSource): told which partitions were
 * released, and which were gained, before those are taken over; it hands the entries back through
 * GroupScheduler.putEntry and removeEntry.
 */
export interface PartitionDefinitions {
  /** Resolves once the entries of `partitions` were handed over (it retries on its own until then). */
  gained(partitions: readonly number[]): Promise<void>;
  released(partitions: readonly number[]): void;
  /** How many it holds now. */
  readonly size: number;
}

export interface StatePartitionsOptions {
  kafka: KafkaClient;
  /** The member of the scheduler group on the state topic. */
  consumer: GroupConsumer;
  group: string;
  clock: Clock;
  logger: Logger;
  origin: Origin & { group: string };
  entries: EntryCatalog;
  states: EntryStates;
  loop: FireLoop;
  metrics: SchedulerMetrics | undefined;
  /** The group's session timeout: until it passes with no heartbeat answered, no other member can own a partition. */
  sessionTimeoutMs: number;
  /** Entries held per partition (tasks created over HTTP): released with a partition, loaded before a takeover. */
  definitions?: PartitionDefinitions;
  onAcked?(fires: readonly Fire[], ackedAtMs: number): void;
  /** Spans of each fire and its publishing (docs/operations.md#traces). @default none */
  tracing?: Tracing;
  /** How the fires' SCHEDULED events are written. @default 'batched' */
  scheduledEvents?: ScheduledEventsForm;
  /** The deadline timers, decided for the partitions active here. */
  deadlines?: DeadlineTimers;
}

/**
 * The state partitions this instance owns, and the takeover protocol that makes it their only publisher. Each
 * join's assignment is applied in order, one at a time: revoked partitions are released (their queued fires still
 * published), added ones taken over. Taking a partition over: fence its transactional id, read the partition to
 * its end (last fired instant of each entry), fire what was missed per `Misfire`, then arm.
 */
export class StatePartitions {
  private readonly owners = new Map<number, PartitionOwner>();
  private readonly reads = new TakeoverReads();
  private assigned = new Set<number>();
  private joinedOnce = false;
  /** The assignment of the last join, set as it arrives (before it is applied): a takeover retries while it holds. */
  private latestAssignment: Set<number> | undefined;
  /** Pending re-takes of fenced partitions (see retakeIfStillAssigned). */
  private readonly retakes = new Set<TimerHandle>();
  private transition: Promise<void> = Promise.resolve();
  private stopping = false;
  /** This instance's member id in the group, from its last join. */
  private memberId: string | undefined;

  constructor(private readonly o: StatePartitionsOptions) {}

  /** Whether a join was seen since start. */
  get joined(): boolean {
    return this.joinedOnce;
  }

  /** Partitions assigned here now, ascending. */
  get ownedPartitions(): number[] {
    return [...this.assigned].sort((a, b) => a - b);
  }

  get ownedCount(): number {
    return this.assigned.size;
  }

  /** Fires queued in the owners, not yet committed. */
  get queuedFires(): number {
    return [...this.owners.values()].reduce((n, w) => n + w.queued, 0);
  }

  isAssigned(partition: number): boolean {
    return this.assigned.has(partition);
  }

  /** Taken over (fenced, state read, armed) and publishing. */
  isActive(partition: number): boolean {
    return this.owners.get(partition)?.state === 'active';
  }

  /** The last transaction of this partition's owner failed (it is retried). */
  isFailing(partition: number): boolean {
    return this.owners.get(partition)?.failing ?? false;
  }

  /** The active owner of a partition assigned here, when there is one. */
  activeOwner(partition: number): PartitionOwner | undefined {
    const owner = this.owners.get(partition);
    return this.assigned.has(partition) && owner?.state === 'active' ? owner : undefined;
  }

  /** Hands fires to the owner of their partition (dropped when it is not owned here). */
  enqueue(partition: number, fires: readonly Fire[]): void {
    this.owners.get(partition)?.enqueue(fires);
  }

  /** Follows the group's joins and the state reads; call before the consumer runs. */
  listen(): void {
    const { consumer } = this.o;
    consumer.onGroupJoin(({ memberId, assignment }) => {
      this.memberId = memberId;
      const next = new Set(assignment[SCHEDULER_STATE_TOPIC] ?? []);
      this.joinedOnce = true;
      // Before the assignment is applied (assignments queue up): a takeover still reading a partition this one
      // took away gives up now.
      this.reads.assigned(next);
      this.latestAssignment = next;
      // Assignments are applied in order, one at a time.
      this.transition = this.transition
        .then(() => this.reassign(next))
        .catch((err: unknown) => {
          this.o.logger.error(`applying the new assignment failed: ${errorMessage(err)}`);
        });
    });
    consumer.onBatchDone((_topic, partition, lastOffset) =>
      this.reads.batchDone(partition, BigInt(lastOffset)),
    );
  }

  private async reassign(next: Set<number>): Promise<void> {
    // A partition kept whose producer was fenced meanwhile (this member was out of its group and another instance
    // took it) is taken over again: its owner here fires nothing any more.
    for (const p of next)
      if (this.assigned.has(p) && this.owners.get(p)?.state === 'fenced') {
        await this.release(p);
        this.assigned.delete(p);
      }
    const revoked = [...this.assigned].filter((p) => !next.has(p));
    const added = [...next].filter((p) => !this.assigned.has(p));
    this.assigned = next;
    for (const p of revoked) await this.release(p);
    if (revoked.length > 0) this.o.definitions?.released(revoked);
    // A gained partition's entries are all there before it is armed (takeOverOnce reads them from the catalog).
    if (added.length > 0) await this.o.definitions?.gained(added);
    await Promise.all(added.map((p) => this.takeOver(p)));
    this.o.logger.info(`owning state partitions [${this.ownedPartitions.join(',')}]`, {
      entries: this.o.entries.entriesIn(this.assigned).length,
    });
  }

  /**
   * Fenced while the partition is still assigned here. Usually a rebalance gave it to another instance and the
   * join that says so is on its way; but when this member was out of its group (a crash, a broker restart) and got
   * the partition back with no join in between, or another instance took it over on an assignment older than this
   * one's, no join will come, and nobody would fire its entries. The group's coordinator settles it: as soon as it
   * says the group is stable with the partition assigned to this member, take it over again (within a second or
   * so); failing that answer, once a grace period passes with no new join.
   */
  private retakeIfStillAssigned(partition: number, fenced: PartitionOwner): void {
    const joins = this.o.consumer.health().joins;
    const since = this.o.clock.now();
    const look = (): void => {
      const timer = this.o.clock.setTimeout(() => {
        this.retakes.delete(timer);
        void this.confirmedHere(partition)
          .then((confirmed) => {
            if (this.stopping || this.o.consumer.health().joins !== joins) return;
            if (!confirmed && this.o.clock.now() - since < REFENCED_GRACE_MS) return look();
            this.retake(partition, fenced, confirmed);
          })
          .catch(() => undefined);
      }, RETAKE_LOOK_MS);
      this.retakes.add(timer);
    };
    look();
  }

  /** Whether the group's coordinator has the group stable with `partition` assigned to this member. */
  private async confirmedHere(partition: number): Promise<boolean> {
    if (this.memberId === undefined) return false;
    try {
      const { state, members } = await this.o.kafka.groupMembers(this.o.group);
      const me = members.find((m) => m.memberId === this.memberId);
      return state === 'Stable' && (me?.assignment[SCHEDULER_STATE_TOPIC] ?? []).includes(partition);
    } catch {
      return false;
    }
  }

  private retake(partition: number, fenced: PartitionOwner, confirmed: boolean): void {
    this.transition = this.transition
      .then(async () => {
        // Only as a member in good standing: one out of its group would fence the partition's rightful owner.
        if (!this.ownsInGoodStanding(partition, fenced)) return;
        this.o.logger.warn(
          `state partition ${partition} is still assigned here after its producer was fenced` +
            (confirmed ? ' (the group coordinator says so)' : ', and no rebalance followed') +
            ': taking it over again',
        );
        this.owners.delete(partition);
        await fenced.stop({ deadlineMs: 0 });
        await this.takeOver(partition);
      })
      .catch((err: unknown) => {
        this.o.logger.error(`taking state partition ${partition} over again failed: ${errorMessage(err)}`);
      });
  }

  /** Whether `owner` is this partition's owner here, and this instance a member of its group in good standing. */
  private ownsInGoodStanding(partition: number, owner: PartitionOwner): boolean {
    if (this.stopping || !this.assigned.has(partition) || this.owners.get(partition) !== owner) return false;
    return inGoodStanding(this.o.consumer.health(), this.o.clock.now(), this.o.group);
  }

  /**
   * Whether `owner` may fence again to settle a transaction in doubt: it owns the partition here and this instance
   * is in its group, and the coordinator answered within the session timeout. Until that passes the coordinator
   * cannot have given the partition to another member; a broker kill that took the group's coordinator along
   * silences heartbeats for seconds, and waiting for the group then (the stricter readiness rule) kept every fire
   * of the partition back until the group settled. Fencing stays safe either way: whoever fences reads the state
   * before it publishes.
   */
  private mayFenceAgain(partition: number, owner: PartitionOwner): boolean {
    if (this.stopping || !this.assigned.has(partition) || this.owners.get(partition) !== owner) return false;
    return inGoodStanding(
      this.o.consumer.health(),
      this.o.clock.now(),
      this.o.group,
      this.o.sessionTimeoutMs,
    );
  }

  /** Reads a state partition to its end now; resolves to that end, or undefined when it was taken away meanwhile. */
  private async readStateToEnd(partition: number): Promise<bigint | undefined> {
    const end = (await this.o.kafka.endOffsets(SCHEDULER_STATE_TOPIC)).get(partition) ?? 0n;
    this.o.consumer.resume(SCHEDULER_STATE_TOPIC, [partition]);
    try {
      return (await this.reads.waitFor(partition, end)) === 'caught-up' ? end : undefined;
    } finally {
      // Caught up: from here on this instance is the only writer, and reading its own writes back would cost a
      // core at thousands of fires a second. The partition is read again if it is ever taken over again.
      this.o.consumer.pause(SCHEDULER_STATE_TOPIC, [partition]);
    }
  }

  private async release(partition: number): Promise<void> {
    this.o.deadlines?.release(partition);
    for (const e of this.o.entries.entriesOf(partition)) this.o.loop.remove(e.id);
    const owner = this.owners.get(partition);
    this.owners.delete(partition);
    // Fires already handed to it are still published: we owned them when they came due.
    await owner?.stop({ deadlineMs: 5000 });
  }

  /**
   * Takes a partition over, again and again while it stays assigned here: a takeover that failed (a broker killed
   * while it fenced or read the state) left the partition assigned with nobody firing its entries.
   */
  private async takeOver(partition: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.takeOverOnce(partition);
        return;
      } catch (err) {
        const owner = this.owners.get(partition);
        if (owner) {
          this.owners.delete(partition);
          await owner.stop({ deadlineMs: 0 }).catch(() => undefined);
        }
        if (this.stopping || !(this.latestAssignment ?? this.assigned).has(partition)) return;
        const delayMs = backoffDelayMs(attempt, { baseMs: 500, maxMs: 5000 });
        this.o.logger.warn(
          `taking state partition ${partition} over failed (${errorMessage(err)}); trying again in ${delayMs} ms`,
          { attempt },
        );
        await sleep(this.o.clock, delayMs);
      }
    }
  }

  private async takeOverOnce(partition: number): Promise<void> {
    const owner = this.newOwner(partition);
    this.owners.set(partition, owner);
    // 1. Fence: from here on no earlier owner of this partition can commit a fire.
    await owner.fence();
    // 2. Read the partition's state to the end measured now (everything any earlier owner committed).
    const end = await this.readStateToEnd(partition);
    if (end === undefined) {
      this.o.logger.info(`state partition ${partition} was reassigned during its takeover; giving it up`);
      if (this.owners.get(partition) === owner) this.owners.delete(partition);
      await owner.stop({ deadlineMs: 0 });
      return;
    }
    if (this.owners.get(partition) !== owner || !this.assigned.has(partition)) return;
    // 3. Fire what was missed while nobody owned these entries, then arm them from now.
    const { states, logger } = this.o;
    const mine = this.o.entries.entriesOf(partition);
    const { missed, differing } = catchUp(mine, states, this.o.clock.now(), {
      logger,
      metrics: this.o.metrics,
      arm: (e, fromMs, known) => this.o.loop.add(e, fromMs, known),
      dropped: (e, d) => owner.noteDropped(e.id, d),
    });
    if (differing.length > 0) {
      logger.warn(
        `entries ${differing.join(', ')} differ from what group ${this.o.group} last fired (another instance runs ` +
          `a different schedule file?); all instances of a group should run the same file`,
      );
    }
    const known = mine.filter((e) => states.has(e.id));
    const latest = Math.max(...known.map((e) => states.lastFiredMs(e.id) ?? 0));
    logger.info(
      `state partition ${partition} read to offset ${end}: ${known.length} of its ${mine.length} entries fired ` +
        `before` +
        (known.length > 0 ? `, latest at ${new Date(latest).toISOString()}` : ''),
    );
    if (missed.length > 0) {
      logger.info(`state partition ${partition}: firing ${missed.length} missed fire time(s) per Misfire`);
      owner.enqueue(missed);
    }
    owner.activate();
    this.o.deadlines?.activate(partition);
  }

  /** The publisher of one partition's fires, wired to the state, the metrics and the re-take after a fence. */
  private newOwner(partition: number): PartitionOwner {
    const { logger, metrics } = this.o;
    const owner: PartitionOwner = new PartitionOwner({
      kafka: this.o.kafka,
      group: this.o.group,
      partition,
      clock: this.o.clock,
      logger,
      scheduler: this.o.origin,
      ...(this.o.tracing ? { tracing: this.o.tracing } : {}),
      ...(this.o.scheduledEvents ? { scheduledEvents: this.o.scheduledEvents } : {}),
      onPublishError: (p) => metrics?.publishFailed(p),
      onMissedAlert: (id) => metrics?.alerted(id, 'missed'),
      onAcked: (fires, firedAt, at) => {
        this.o.states.acked(fires);
        this.o.deadlines?.armed(partition, fires, firedAt);
        metrics?.acked(fires, firedAt, at);
        if (logger.isDebugEnabled())
          for (const f of fires) {
            logger.debug(`fired ${f.entry.id}`, {
              taskId: taskIdFor(f.entry.id, f.scheduledFor),
              ackLagMs: at - (f.dueAt ?? f.scheduledFor),
            });
          }
        this.o.onAcked?.(fires, at);
      },
      mayRefence: (): boolean => this.mayFenceAgain(partition, owner),
      isPublished: async (f) =>
        (await publishedTaskIds(this.o.kafka, f.entry)).taskIds.has(taskIdFor(f.entry.id, f.scheduledFor)),
      groupJoins: () => this.o.consumer.health().joins,
      readCommitted: async () => {
        if ((await this.readStateToEnd(partition)) === undefined)
          throw new Error(`state partition ${partition} was reassigned while its state was read`);
        return (id) => this.o.states.lastFiredMs(id);
      },
      onFenced: (p) => {
        if (this.owners.get(p) !== owner) return;
        this.o.deadlines?.release(p);
        for (const e of this.o.entries.entriesOf(p)) this.o.loop.remove(e.id);
        this.retakeIfStillAssigned(p, owner);
      },
    });
    return owner;
  }

  /** No more takeovers or re-takes (the scheduler is stopping); owners still publish until `stopOwners`. */
  halt(): void {
    this.stopping = true;
    for (const t of this.retakes) this.o.clock.clearTimeout(t);
  }

  /** Stops every owner (publishing what is queued within the deadline): resolves to the fires left unpublished. */
  async stopOwners({ deadlineMs }: { deadlineMs: number }): Promise<number> {
    const left = await Promise.all([...this.owners.values()].map((o) => o.stop({ deadlineMs })));
    this.owners.clear();
    return left.reduce((a, b) => a + b, 0);
  }
}
