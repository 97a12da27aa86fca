import { hostname } from 'node:os';
import type { Clock } from '../shared/clock.js';
import type { ScheduleEntry } from '../shared/config/schema.js';
import { compileCron } from '../shared/cron.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { SCHEDULER_STATE_TOPIC, taskIdFor } from '../shared/messages.js';
import { partitionForKey } from '../shared/kafka/index.js';
import type { GroupConsumer, InRecord, KafkaClient, PartitionBatch } from '../shared/kafka/index.js';
import { FireLoop } from './fire-loop.js';
import type { Fire } from './fire-loop.js';
import { missedInstants } from './misfire.js';
import { PartitionOwner } from './partition-owner.js';
import { parseState, specHashOf, stateKey } from './state.js';

/** Everything that makes an entry behave differently (its position in the file does not). */
function definitionOf(e: ScheduleEntry): string {
  const { index: _index, ...rest } = e;
  return JSON.stringify(rest);
}

export interface GroupSchedulerOptions {
  kafka: KafkaClient;
  entries: readonly ScheduleEntry[];
  /** Scheduler group: the consumer group on the state topic, the prefix of state keys and transactional ids. */
  group: string;
  clock: Clock;
  logger: Logger;
  /** @default 6000 */
  sessionTimeoutMs?: number;
  onAcked?(fires: readonly Fire[], ackedAtMs: number): void;
}

interface PartitionReadProgress {
  /** End offset measured after fencing: the state is known once everything before it was read. */
  end: bigint;
  caughtUp: () => void;
}

/**
 * A member of a scheduler group. Entries map to partitions of `taskmanager.scheduler-state` by the producer's
 * partitioner over `<group>/<Id>`; the group's Kafka consumer group assigns those partitions to instances, and an
 * instance fires only the entries of its partitions. Taking a partition over: fence its transactional id, read
 * the partition to its end (last fired instant of each entry), fire what was missed per `Misfire`, then arm.
 */
export class GroupScheduler {
  private readonly loop: FireLoop;
  private readonly consumer: GroupConsumer;
  private readonly owners = new Map<number, PartitionOwner>();
  private readonly lastFired = new Map<string, { lastFiredMs: number; specHash: string }>();
  private readonly reading = new Map<number, PartitionReadProgress>();
  /** Per state partition, the offset after the last record folded into `lastFired` (kept across generations). */
  private readonly readUpTo = new Map<number, bigint>();
  private entries = new Map<string, ScheduleEntry>();
  private partitionCount = 0;
  private readonly partitionById = new Map<string, number>();
  private assigned = new Set<number>();
  private joined = false;
  private transition: Promise<void> = Promise.resolve();
  private stopping: Promise<number> | undefined;
  private readonly origin;

  constructor(private readonly o: GroupSchedulerOptions) {
    this.origin = { host: hostname(), pid: process.pid, group: o.group };
    for (const e of o.entries) this.entries.set(e.id, e);
    this.loop = new FireLoop({ clock: o.clock, logger: o.logger, onFires: (fires) => this.route(fires) });
    this.consumer = o.kafka.consumer({ groupId: o.group, sessionTimeoutMs: o.sessionTimeoutMs ?? 6000 });
  }

  /** Partitions this instance owns now. */
  get ownedPartitions(): number[] {
    return [...this.assigned].sort((a, b) => a - b);
  }

  /**
   * Whether this instance is in its group and fires everything it was given: joined, and every assigned state
   * partition taken over (fenced, state read, armed). `reason` says what is missing when not ready.
   */
  readiness(): { ready: boolean; reason: string; assigned: number[]; active: number[] } {
    const assigned = this.ownedPartitions;
    const active = assigned.filter((p) => this.owners.get(p)?.state === 'active');
    let reason = 'ok';
    if (this.stopping) reason = 'stopping';
    else if (!this.joined) reason = `not (yet) in scheduler group ${this.o.group}`;
    else if (active.length < assigned.length)
      reason = `taking over state partitions [${assigned.filter((p) => !active.includes(p)).join(',')}]`;
    return { ready: reason === 'ok', reason, assigned, active };
  }

  /** The state partition owning an entry; memoized, as it is asked for on every fire. */
  partitionOf(id: string): number {
    let p = this.partitionById.get(id);
    if (p === undefined) {
      p = partitionForKey(stateKey(this.o.group, id), this.partitionCount);
      // Known only once start() read the topic's partition count.
      if (this.partitionCount > 0) this.partitionById.set(id, p);
    }
    return p;
  }

  async start(): Promise<void> {
    this.partitionCount = await this.o.kafka.partitionCount(SCHEDULER_STATE_TOPIC);
    this.consumer.onGroupJoin(({ assignment }) => {
      const next = new Set(assignment[SCHEDULER_STATE_TOPIC] ?? []);
      this.joined = true;
      // Assignments are applied in order, one at a time.
      this.transition = this.transition
        .then(() => this.reassign(next))
        .catch((err: unknown) => {
          this.o.logger.error(`applying the new assignment failed: ${errorMessage(err)}`);
        });
    });
    this.consumer.onBatchDone((_topic, partition, lastOffset) => {
      const read = BigInt(lastOffset) + 1n;
      if (read > (this.readUpTo.get(partition) ?? 0n)) this.readUpTo.set(partition, read);
      const progress = this.reading.get(partition);
      if (progress && read >= progress.end) progress.caughtUp();
    });
    await this.consumer.connect();
    await this.consumer.subscribe([SCHEDULER_STATE_TOPIC], true);
    await this.consumer.run({
      partitionsConsumedConcurrently: 1,
      autoCommit: false,
      eachBatch: async (b) => this.foldState(b),
    });
    this.loop.start();
    this.o.logger.info(
      `scheduler joined group ${this.o.group} with ${this.entries.size} entries over ${this.partitionCount} state partitions`,
    );
  }

  /** Every record of the state topic: our group's keys update the last fired instants. */
  private async foldState(b: PartitionBatch): Promise<void> {
    const prefix = `${this.o.group}/`;
    for (const r of b.records) this.foldRecord(prefix, r);
    // Without this the next fetch starts where this one did: a partition longer than one fetch (1 MiB) was
    // re-read forever and its takeover never finished.
    b.resolveOffset(b.lastOffset());
  }

  private foldRecord(prefix: string, r: InRecord): void {
    const key = r.key?.toString('utf8');
    if (!key?.startsWith(prefix)) return;
    const id = key.slice(prefix.length);
    const s = parseState(r.value);
    const prev = this.lastFired.get(id);
    if (s && (!prev || s.lastFiredMs >= prev.lastFiredMs)) this.lastFired.set(id, s);
  }

  private async reassign(next: Set<number>): Promise<void> {
    const revoked = [...this.assigned].filter((p) => !next.has(p));
    const added = [...next].filter((p) => !this.assigned.has(p));
    this.assigned = next;
    for (const p of revoked) await this.release(p);
    await Promise.all(added.map((p) => this.takeOver(p)));
    this.o.logger.info(`owning state partitions [${this.ownedPartitions.join(',')}]`, {
      entries: this.entriesOwned().length,
    });
  }

  private entriesOf(partition: number): ScheduleEntry[] {
    return [...this.entries.values()].filter((e) => this.partitionOf(e.id) === partition);
  }

  private entriesOwned(): ScheduleEntry[] {
    return [...this.entries.values()].filter((e) => this.assigned.has(this.partitionOf(e.id)));
  }

  private async release(partition: number): Promise<void> {
    for (const e of this.entriesOf(partition)) this.loop.remove(e.id);
    const owner = this.owners.get(partition);
    this.owners.delete(partition);
    this.reading.delete(partition);
    // Fires already handed to it are still published: we owned them when they came due.
    await owner?.stop({ deadlineMs: 5000 });
  }

  private async takeOver(partition: number): Promise<void> {
    const owner = new PartitionOwner({
      kafka: this.o.kafka,
      group: this.o.group,
      partition,
      clock: this.o.clock,
      logger: this.o.logger,
      scheduler: this.origin,
      onAcked: (fires, at) => {
        for (const f of fires) {
          const prev = this.lastFired.get(f.entry.id);
          if (!prev || prev.lastFiredMs < f.scheduledFor)
            this.lastFired.set(f.entry.id, { lastFiredMs: f.scheduledFor, specHash: specHashOf(f.entry) });
        }
        for (const f of fires) {
          this.o.logger.debug(`fired ${f.entry.id}`, {
            taskId: taskIdFor(f.entry.id, f.scheduledFor),
            ackLagMs: at - f.scheduledFor,
          });
        }
        this.o.onAcked?.(fires, at);
      },
      onFenced: (p) => {
        if (this.owners.get(p) === owner) for (const e of this.entriesOf(p)) this.loop.remove(e.id);
      },
    });
    this.owners.set(partition, owner);
    // 1. Fence: from here on no earlier owner of this partition can commit a fire.
    await owner.fence();
    // 2. Read the partition's state to the end measured now (everything any earlier owner committed).
    const end = (await this.o.kafka.endOffsets(SCHEDULER_STATE_TOPIC)).get(partition) ?? 0n;
    this.consumer.resume(SCHEDULER_STATE_TOPIC, [partition]);
    await new Promise<void>((resolve) => {
      this.reading.set(partition, { end, caughtUp: resolve });
      if ((this.readUpTo.get(partition) ?? 0n) >= end) resolve();
    });
    this.reading.delete(partition);
    // Caught up: from here on this instance is the only writer, and reading its own writes back would cost a core
    // at thousands of fires a second. The partition is read again if it is ever taken over again.
    this.consumer.pause(SCHEDULER_STATE_TOPIC, [partition]);
    if (this.owners.get(partition) !== owner || !this.assigned.has(partition)) return;
    // 3. Fire what was missed while nobody owned these entries, then arm them from now.
    const now = this.o.clock.now();
    const missed: Fire[] = [];
    const differing: string[] = [];
    for (const e of this.entriesOf(partition)) {
      const known = this.lastFired.get(e.id);
      if (known && known.specHash !== specHashOf(e)) differing.push(e.id);
      for (const t of missedInstants(e, compileCron(e.cron, e.timeZone), known?.lastFiredMs, now)) {
        missed.push({ entry: e, scheduledFor: t });
      }
      this.loop.add(e, Math.max(now, known?.lastFiredMs ?? now));
    }
    if (differing.length > 0) {
      this.o.logger.warn(
        `entries ${differing.join(', ')} differ from what group ${this.o.group} last fired (another instance runs ` +
          `a different schedule file?); all instances of a group should run the same file`,
      );
    }
    if (missed.length > 0) {
      this.o.logger.info(
        `state partition ${partition}: firing ${missed.length} missed fire time(s) per Misfire`,
      );
      owner.enqueue(missed);
    }
    owner.activate();
  }

  /**
   * Applies a new version of the schedule (hot reload): removed entries stop, added and changed ones are armed
   * if their partition is ours. A changed entry keeps its last fired instant, so no instant fires twice.
   */
  applyEntries(next: readonly ScheduleEntry[]): { added: string[]; changed: string[]; removed: string[] } {
    const nextById = new Map(next.map((e) => [e.id, e]));
    const removed = [...this.entries.keys()].filter((id) => !nextById.has(id));
    const added: string[] = [];
    const changed: string[] = [];
    for (const e of next) {
      const prev = this.entries.get(e.id);
      if (!prev) added.push(e.id);
      else if (definitionOf(prev) !== definitionOf(e)) changed.push(e.id);
    }
    for (const id of removed) {
      this.loop.remove(id);
      this.entries.delete(id);
    }
    const now = this.o.clock.now();
    for (const id of [...added, ...changed]) {
      const e = nextById.get(id) as ScheduleEntry;
      this.entries.set(id, e);
      if (
        !this.assigned.has(this.partitionOf(id)) ||
        this.owners.get(this.partitionOf(id))?.state !== 'active'
      )
        continue;
      // Re-adding keeps the loop's last handed-out instant for this id (even one not yet acknowledged).
      this.loop.add(e, Math.max(now, this.lastFired.get(id)?.lastFiredMs ?? now));
    }
    this.o.logger.info(
      `schedule reloaded: ${added.length} added [${added.join(',')}], ${changed.length} changed [${changed.join(',')}], ` +
        `${removed.length} removed [${removed.join(',')}]`,
    );
    return { added, changed, removed };
  }

  /** Hands each due fire to the owner of its entry's partition. */
  private route(fires: Fire[]): void {
    const byPartition = new Map<number, Fire[]>();
    for (const f of fires) {
      const p = this.partitionOf(f.entry.id);
      let list = byPartition.get(p);
      if (!list) byPartition.set(p, (list = []));
      list.push(f);
    }
    for (const [p, list] of byPartition) this.owners.get(p)?.enqueue(list);
  }

  /** Stops firing, publishes what is queued, leaves the group. Idempotent. Resolves to unpublished fires. */
  stop({ deadlineMs }: { deadlineMs: number }): Promise<number> {
    this.stopping ??= (async () => {
      this.loop.stop();
      const left = await Promise.all([...this.owners.values()].map((o) => o.stop({ deadlineMs })));
      this.owners.clear();
      await this.consumer.stop().catch(() => undefined);
      await this.consumer.disconnect().catch(() => undefined);
      const unsent = left.reduce((a, b) => a + b, 0);
      if (unsent > 0) this.o.logger.error(`stopped with ${unsent} fires not published (broker unreachable)`);
      else this.o.logger.info('scheduler stopped; every fire was published');
      return unsent;
    })();
    return this.stopping;
  }
}
