import type { Consumer } from 'kafkajs';
import { backoffDelayMs } from '../backoff.js';
import type { Clock } from '../clock.js';
import { sleep, systemClock } from '../clock.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { isNotRunning, isUnknownMember } from './errors.js';
import { toPartitionBatch } from './records.js';
import { beforeGroupJoin } from './kafkajs/index.js';
import type { GroupAssignment, PartitionBatch } from './types.js';

export interface RunOptions {
  /** Partitions whose batches are handled at the same time. */
  partitionsConsumedConcurrently: number;
  /** False: never commit (a reader that re-reads from the beginning on every assignment). @default true */
  autoCommit?: boolean;
  eachBatch(batch: PartitionBatch): Promise<void>;
  /**
   * Runs before every join of the group (the first, each rejoin after a rebalance, a restart's): a member whose work
   * outlives its batches finishes and commits it here, before its partitions can move (`kafkajs/rejoin-hook.ts`).
   */
  beforeJoin?(): Promise<void>;
}

/** A consumer-group member: subscribe, run batches, stop (finishing batches, leaving the group). */
export class GroupConsumer {
  private joinedAt: number | undefined;
  private lastHeartbeatAt: number | undefined;
  private rebalances = 0;
  private memberId: string | undefined;
  /** The member id of this member before it was restarted, until the group has let it go. */
  private stale: string | undefined;
  private running: RunOptions | undefined;
  private stopped = false;
  /** Restarts after non-retriable errors since the last join: each waits longer, up to 5 s. */
  private restarts = 0;
  /** Partitions paused by the caller: kafkajs forgets them when it restarts a member, so they are paused again. */
  private readonly paused = new Map<string, Set<number>>();
  private removeJoinHook: (() => void) | undefined;

  constructor(
    private readonly consumer: Consumer,
    private readonly logger: Logger,
    private readonly groupId: string,
    private readonly leaveAs?: (memberId: string) => Promise<void>,
    /** Stamps joins and heartbeats: readiness compares them with the same clock's now. */
    private readonly clock: Clock = systemClock,
  ) {
    const e = consumer.events;
    consumer.on(e.GROUP_JOIN, (ev) => {
      this.joinedAt = this.clock.now();
      this.lastHeartbeatAt = this.joinedAt;
      this.rebalances++;
      this.memberId = ev.payload.memberId;
      this.stale = undefined;
      this.restarts = 0;
      for (const [topic, ps] of this.paused)
        if (ps.size > 0) this.consumer.pause([{ topic, partitions: [...ps] }]);
    });
    consumer.on(e.CRASH, (ev) => {
      // Either way the member comes back as a new one, and the group keeps the old one (waiting for it at the next
      // rebalance) until its session times out: leave as the old member as soon as the coordinator answers.
      if (this.memberId && this.leaveAs && this.stale !== this.memberId) {
        this.stale = this.memberId;
        void this.leaveStale(this.memberId);
      }
      // kafkajs restarts a member by itself only after a retriable error; after any other (an ILLEGAL_GENERATION
      // or UNKNOWN_MEMBER_ID while rejoining after a broker restart) the member would stay out of its group for
      // good, its process still up: run it again.
      if (!ev.payload.restart && this.running && !this.stopped) void this.runAgain(ev.payload.error);
    });
    consumer.on(e.HEARTBEAT, () => (this.lastHeartbeatAt = this.clock.now()));
    // A crash, a stop or a lost connection ends the membership until the next join.
    for (const end of [e.CRASH, e.STOP, e.DISCONNECT]) consumer.on(end, () => (this.joinedAt = undefined));
  }

  private async runAgain(error: Error): Promise<void> {
    const options = this.running as RunOptions;
    this.logger.error(
      `consumer of group ${this.groupId} stopped after a non-retriable error (${errorMessage(error)}); starting it again`,
    );
    // A restart whose join fails crashes again and comes back here: the wait grows across those.
    while (!this.stopped) {
      this.restarts++;
      await sleep(this.clock, backoffDelayMs(this.restarts, { baseMs: 500, maxMs: 5000 }));
      if (this.stopped) return;
      try {
        await this.consumer.connect();
        await this.runWith(options);
        // Stopped meanwhile: kafkajs had no running member to stop then; it has one now.
        if (this.stopped) await this.consumer.disconnect();
        return;
      } catch (err) {
        this.logger.error(`cannot start the consumer of group ${this.groupId} again (${errorMessage(err)})`);
      }
    }
  }

  private async leaveStale(memberId: string): Promise<void> {
    for (let attempt = 0; attempt < 120 && this.stale === memberId; attempt++) {
      try {
        await this.leaveAs?.(memberId);
        this.logger.debug(`left the group as this member's previous incarnation ${memberId}`);
        return;
      } catch (err) {
        // The group already let it go (its session ended): nothing left to do.
        if (isUnknownMember(err)) return;
        // Broker or coordinator still away: try again shortly.
        await sleep(this.clock, backoffDelayMs(attempt + 1, { baseMs: 250, factor: 1 }));
      }
    }
  }

  /**
   * Membership as this member sees it: whether it is in the group, when the coordinator last answered a
   * heartbeat (or a join), and how many times it joined (each rebalance is a join).
   */
  health(): { joined: boolean; lastHeartbeatAt: number | undefined; joins: number } {
    return {
      joined: this.joinedAt !== undefined,
      lastHeartbeatAt: this.lastHeartbeatAt,
      joins: this.rebalances,
    };
  }

  connect(): Promise<void> {
    return this.consumer.connect();
  }

  async subscribe(topics: string[], fromBeginning = true): Promise<void> {
    await this.consumer.subscribe({ topics, fromBeginning });
  }

  onGroupJoin(listener: (a: GroupAssignment) => void): void {
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      listener({ memberId: e.payload.memberId, assignment: e.payload.memberAssignment });
    });
  }

  /**
   * After each fetched batch is handled, with the offset of its last record, control records included. Also
   * called for batches kafkajs does not hand to `eachBatch` because transaction markers or aborted records were
   * all it held: the only way to know a reader reached a partition's end.
   */
  onBatchDone(listener: (topic: string, partition: number, lastOffset: string) => void): void {
    this.consumer.on(this.consumer.events.END_BATCH_PROCESS, (e) => {
      listener(e.payload.topic, e.payload.partition, e.payload.lastOffset);
    });
  }

  onCrash(listener: (error: Error, restart: boolean) => void): void {
    this.consumer.on(this.consumer.events.CRASH, (e) => {
      listener(e.payload.error, e.payload.restart);
    });
  }

  async run(options: RunOptions): Promise<void> {
    this.running = options;
    if (options.beforeJoin) this.removeJoinHook = beforeGroupJoin(this.groupId, options.beforeJoin);
    await this.runWith(options);
  }

  private async runWith(options: RunOptions): Promise<void> {
    await this.consumer.run({
      autoCommit: options.autoCommit ?? true,
      // Interval 0: every commitIfNecessary() commits what is resolved. The batch worker calls it through a
      // coalescing pump as offsets move; kafkajs also commits at the end of each batch, before a rebalance and
      // when stopping.
      autoCommitInterval: 0,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: options.partitionsConsumedConcurrently,
      eachBatch: (p) => options.eachBatch(toPartitionBatch(p)),
    });
  }

  /**
   * Stops fetching these partitions; membership (heartbeats) goes on. Kept across rebalances while assigned, and
   * across restarts of the member.
   */
  pause(topic: string, partitions: number[]): void {
    const set = this.paused.get(topic) ?? new Set();
    for (const p of partitions) set.add(p);
    this.paused.set(topic, set);
    this.whileRunning(() => this.consumer.pause([{ topic, partitions }]));
  }

  resume(topic: string, partitions: number[]): void {
    for (const p of partitions) this.paused.get(topic)?.delete(p);
    this.whileRunning(() => this.consumer.resume([{ topic, partitions }]));
  }

  /** Moves the next fetch of a partition to `offset`. */
  seek(topic: string, partition: number, offset: string): void {
    this.whileRunning(() => this.consumer.seek({ topic, partition, offset }));
  }

  /** Between a crash and the restart kafkajs has no group to act on (it throws); the next join applies pauses. */
  private whileRunning(act: () => void): void {
    try {
      act();
    } catch (err) {
      if (!isNotRunning(err)) throw err;
    }
  }

  /** Stops fetching, waits for running batches, commits, leaves the group. */
  stop(): Promise<void> {
    this.stopped = true;
    return this.consumer.stop();
  }

  disconnect(): Promise<void> {
    this.stopped = true;
    this.removeJoinHook?.();
    this.logger.debug('disconnecting consumer');
    return this.consumer.disconnect();
  }
}
