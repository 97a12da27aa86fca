import type { Clock } from '../../../src/shared/clock.js';
import type { GroupAssignment, PartitionBatch, RunOptions } from '../../../src/shared/kafka/index.js';
import type { MemoryKafka } from './memory-kafka.js';

/**
 * One member of a consumer group of MemoryKafka, with the surface of GroupConsumer. The test plays the group
 * coordinator: `join` hands the member its assignment (a rebalance), `silence` stops its heartbeats being answered.
 * While running, it fetches every assigned partition that is not paused, from the start (no committed offsets), a
 * batch per partition, one partition at a time, and reports each batch done as kafkajs's END_BATCH_PROCESS does.
 */
export class MemoryGroupMember {
  private joins = 0;
  private joined = false;
  /** Set while the coordinator does not answer: heartbeats keep the stamp of the last answer. */
  private silentSince: number | undefined;
  private assignment: Record<string, number[]> = {};
  private readonly joinListeners: Array<(a: GroupAssignment) => void> = [];
  private readonly doneListeners: Array<(topic: string, partition: number, lastOffset: string) => void> = [];
  private running: RunOptions | undefined;
  private readonly paused = new Set<string>();
  /** Next offset to fetch, per `topic/partition`. */
  private readonly position = new Map<string, number>();
  private fetching: Promise<void> | undefined;
  private fetchAgain = false;
  stopped = false;
  /** While set, fetches return nothing (a slow or unreachable partition leader). */
  holdFetches = false;

  constructor(
    private readonly kafka: MemoryKafka,
    readonly groupId: string,
    private readonly clock: Clock,
    /** Its member id, as the coordinator gave it. */
    readonly memberId: string = `${groupId}-member`,
  ) {}

  /** What the coordinator has of it (describe group): its assignment while it is in the group (none while silenced). */
  described():
    { memberId: string; clientId: string; host: string; assignment: Record<string, number[]> } | undefined {
    return this.joined && !this.stopped && this.silentSince === undefined
      ? { memberId: this.memberId, clientId: 'memory', host: 'memory', assignment: this.assignment }
      : undefined;
  }

  /** The coordinator's answer to a join: this member now holds these partitions (a new generation). */
  join(assignment: Record<string, number[]>): void {
    this.joins++;
    this.joined = true;
    this.silentSince = undefined;
    this.assignment = assignment;
    this.position.clear();
    for (const l of this.joinListeners) l({ memberId: this.memberId, assignment });
    this.fetchSoon();
  }

  /** The coordinator stops answering this member's heartbeats (broker gone, or the member partitioned away). */
  silence(): void {
    this.silentSince ??= this.clock.now();
  }

  health(): { joined: boolean; lastHeartbeatAt: number | undefined; joins: number } {
    return {
      joined: this.joined,
      lastHeartbeatAt: this.joins === 0 ? undefined : (this.silentSince ?? this.clock.now()),
      joins: this.joins,
    };
  }

  connect(): Promise<void> {
    return Promise.resolve();
  }

  subscribe(): Promise<void> {
    return Promise.resolve();
  }

  onGroupJoin(listener: (a: GroupAssignment) => void): void {
    this.joinListeners.push(listener);
  }

  onBatchDone(listener: (topic: string, partition: number, lastOffset: string) => void): void {
    this.doneListeners.push(listener);
  }

  onCrash(): void {}

  run(options: RunOptions): Promise<void> {
    this.running = options;
    this.fetchSoon();
    return Promise.resolve();
  }

  pause(topic: string, partitions: number[]): void {
    for (const p of partitions) this.paused.add(`${topic}/${p}`);
  }

  resume(topic: string, partitions: number[]): void {
    for (const p of partitions) this.paused.delete(`${topic}/${p}`);
    this.fetchSoon();
  }

  seek(topic: string, partition: number, offset: string): void {
    this.position.set(`${topic}/${partition}`, Number(offset));
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.joined = false;
    return this.fetching ?? Promise.resolve();
  }

  disconnect(): Promise<void> {
    return this.stop();
  }

  /** Fetches on the next turn of the event loop (coalesced), as a long poll answered by new data would. */
  fetchSoon(): void {
    if (this.fetching) {
      this.fetchAgain = true;
      return;
    }
    this.fetching = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.fetch())
      .finally(() => {
        this.fetching = undefined;
        if (this.fetchAgain) {
          this.fetchAgain = false;
          this.fetchSoon();
        }
      });
  }

  private async fetch(): Promise<void> {
    const run = this.running;
    if (!run || this.stopped || !this.joined || this.holdFetches) return;
    for (const [topic, partitions] of Object.entries(this.assignment))
      for (const partition of partitions) {
        const key = `${topic}/${partition}`;
        if (this.paused.has(key)) continue;
        const records = this.kafka.records(topic, partition).slice(this.position.get(key) ?? 0);
        if (records.length === 0) continue;
        const last = records[records.length - 1]?.offset as string;
        const batch: PartitionBatch = {
          topic,
          partition,
          highWatermark: String(this.kafka.records(topic, partition).length),
          records,
          lastOffset: () => last,
          resolveOffset: (o) => this.position.set(key, Number(o) + 1),
          commitIfNecessary: () => Promise.resolve(),
          commitOffsets: () => Promise.resolve(),
          heartbeat: () => Promise.resolve(),
          isRunning: () => !this.stopped,
          isStale: () => false,
        };
        await run.eachBatch(batch);
        for (const l of this.doneListeners) l(topic, partition, last);
      }
  }
}
