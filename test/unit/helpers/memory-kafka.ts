import type { Clock } from '../../../src/shared/clock.js';
import { systemClock } from '../../../src/shared/clock.js';
import { partitionForKey } from '../../../src/shared/kafka/index.js';
import type {
  Follower,
  FollowOptions,
  InRecord,
  KafkaClient,
  OutRecord,
  TopicLayout,
} from '../../../src/shared/kafka/index.js';
import { MemoryGroupMember } from './memory-group-member.js';

type ActiveGroups = Awaited<ReturnType<KafkaClient['activeGroups']>>;

/** What a transactional producer of the fake does: send, fence, reset (a fresh producer of the same id). */
export interface MemoryProducer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  send(records: readonly OutRecord[]): Promise<void>;
  sendPlaced(records: readonly OutRecord[]): Promise<Array<{ partition: number; offset: string }>>;
  sendInTransaction(records: readonly OutRecord[]): Promise<void>;
  fence(): Promise<void>;
  reset(): Promise<void>;
  readonly needsReset: boolean;
}

/**
 * KafkaClient in memory, for unit tests of the code that takes one: taskapi (producers, followers, whole reads,
 * group metadata) and the scheduler (partitioned topics, transactions, consumer-group members).
 *
 * Every topic exists, with one partition unless `partitions` says otherwise; a keyed record lands where the
 * producer's partitioner puts it. A record reaches the followers of its topic on the next turn of the event loop (as
 * a fetch would), so writes resolve through the views as they do against a broker. Followers and whole reads are
 * counted: each is a consumer group on a real broker.
 *
 * Transactions are all or nothing, and fencing works as the coordinator's: `fence()` gives the transactional id a
 * new epoch, and a producer of an older epoch fails with PRODUCER_FENCED from then on. Group members
 * (`consumer()`) are assigned partitions by the test (see MemoryGroupMember.join), as the group coordinator would.
 */
export class MemoryKafka {
  readonly topics = new Map<string, InRecord[]>();
  /** Partitions per topic; a topic not listed has one. */
  readonly partitions = new Map<string, number>();
  /** The consumer groups that have members now, as Kafka's group metadata lists them (tests set it). */
  groups: ActiveGroups = [];
  /** Each topic a follower was started on (one consumer group each), in order. */
  readonly followed: string[] = [];
  /** Each topic read whole with readToEnd (a throw-away consumer group each), in order. */
  readonly readWhole: string[] = [];
  /** Every group member made by `consumer()`, in order. */
  readonly members: MemoryGroupMember[] = [];
  /** DescribeGroups fails (a client whose ACLs do not allow it, say). */
  describeGroupsFails = false;
  /** Transactions of these transactional ids fail (not committed, not fenced), as with a broker away. */
  readonly failingTransactions = new Set<string>();
  private readonly followers = new Map<string, Array<(r: InRecord) => void>>();
  private readonly epochs = new Map<string, number>();

  /** `clock`: what group members stamp their heartbeats with. */
  constructor(readonly clock: Clock = systemClock) {}

  /** As a KafkaClient, for the code under test. */
  client(): KafkaClient {
    return this as unknown as KafkaClient;
  }

  /** Topics that do not exist (existingTopics leaves them out); every other one does. */
  readonly missingTopics = new Set<string>();

  existingTopics(topics: string[]): Promise<Set<string>> {
    return Promise.resolve(new Set(topics.filter((t) => !this.missingTopics.has(t))));
  }

  activeGroups(): Promise<ActiveGroups> {
    return Promise.resolve(this.groups);
  }

  /** The group as its coordinator would describe it: stable, with each member's last assignment. */
  groupMembers(groupId: string): ReturnType<KafkaClient['groupMembers']> {
    if (this.describeGroupsFails) return Promise.reject(new Error('DescribeGroups failed'));
    const members = this.members.filter((m) => m.groupId === groupId).flatMap((m) => m.described() ?? []);
    return Promise.resolve({ state: members.length > 0 ? 'Stable' : 'Empty', members });
  }

  partitionCount(topic: string): Promise<number> {
    return Promise.resolve(this.partitionsOf(topic));
  }

  readToEnd(
    topic: string,
    _timeoutMs?: number,
    _tail?: number,
    partitions?: readonly number[],
  ): Promise<InRecord[]> {
    this.readWhole.push(topic);
    return Promise.resolve(this.log(topic).filter((r) => !partitions || partitions.includes(r.partition)));
  }

  /** Every topic's `delete.retention.ms`, as topicLayout reports it. */
  deleteRetentionMs = 24 * 3600_000;

  /** The cluster id topicLayout reports: another one is another cluster. */
  clusterId = 'memory-cluster';

  topicLayout(topic: string): Promise<TopicLayout> {
    const partitions = new Map<number, { low: bigint; high: bigint }>();
    for (let p = 0; p < this.partitionsOf(topic); p++)
      partitions.set(p, { low: 0n, high: BigInt(this.records(topic, p).length) });
    return Promise.resolve({
      clusterId: this.clusterId,
      partitions,
      deleteRetentionMs: this.deleteRetentionMs,
    });
  }

  endOffsets(topic: string): Promise<Map<number, bigint>> {
    const ends = new Map<number, bigint>();
    for (let p = 0; p < this.partitionsOf(topic); p++) ends.set(p, BigInt(this.records(topic, p).length));
    return Promise.resolve(ends);
  }

  /** The records of one partition, in offset order. */
  records(topic: string, partition: number): InRecord[] {
    return this.log(topic).filter((r) => r.partition === partition);
  }

  /** Writes records as a producer outside the code under test would (another instance, an earlier run). */
  write(records: readonly OutRecord[]): void {
    for (const r of records) this.append(r);
  }

  producer(options: { transactionalId?: string } = {}): MemoryProducer {
    const id = options.transactionalId;
    let epoch: number | undefined;
    let inDoubt = false;
    const fence = (): Promise<void> => {
      if (id === undefined) return Promise.reject(new Error('fence() needs a transactionalId'));
      epoch = (this.epochs.get(id) ?? 0) + 1;
      this.epochs.set(id, epoch);
      return Promise.resolve();
    };
    return {
      connect: () => Promise.resolve(),
      disconnect: () => Promise.resolve(),
      send: (records) => {
        for (const r of records) this.append(r);
        return Promise.resolve();
      },
      sendPlaced: (records) =>
        Promise.resolve(
          records.map((record) => {
            const r = this.append(record);
            return { partition: r.partition, offset: r.offset };
          }),
        ),
      sendInTransaction: (records) => {
        if (id !== undefined && epoch !== this.epochs.get(id))
          return Promise.reject(
            Object.assign(new Error(`producer of ${id} fenced by a newer one`), { type: 'PRODUCER_FENCED' }),
          );
        if (id !== undefined && this.failingTransactions.has(id)) {
          // As KafkaProducer: the transaction was not ended, and the next one needs a reset (fencing again).
          inDoubt = true;
          return Promise.reject(new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092'));
        }
        for (const r of records) this.append(r);
        return Promise.resolve();
      },
      fence,
      reset: async () => {
        await fence();
        inDoubt = false;
      },
      get needsReset() {
        return inDoubt;
      },
    };
  }

  /** A member of consumer group `groupId`; it gets partitions when the test calls its `join`. */
  consumer(options: { groupId: string }): MemoryGroupMember {
    const member = new MemoryGroupMember(
      this,
      options.groupId,
      this.clock,
      `${options.groupId}-member-${this.members.length + 1}`,
    );
    this.members.push(member);
    return member;
  }

  follow(topic: string, onRecord: (r: InRecord) => void, options: FollowOptions = {}): Promise<Follower> {
    this.followed.push(topic);
    const from = (p: number) => BigInt(options.fromOffsets?.get(p) ?? '0');
    for (const r of this.log(topic)) if (BigInt(r.offset) >= from(r.partition)) onRecord(r);
    this.followers.set(topic, [...(this.followers.get(topic) ?? []), onRecord]);
    const stop = () => {
      this.followers.set(
        topic,
        (this.followers.get(topic) ?? []).filter((f) => f !== onRecord),
      );
      return Promise.resolve();
    };
    // Records reach a follower as they are written: it has read every one.
    const position = (p: number) => BigInt(this.log(topic).filter((r) => r.partition === p).length);
    return Promise.resolve({ caughtUp: Promise.resolve(), position, stop });
  }

  private partitionsOf(topic: string): number {
    return this.partitions.get(topic) ?? 1;
  }

  private log(topic: string): InRecord[] {
    let log = this.topics.get(topic);
    if (!log) this.topics.set(topic, (log = []));
    return log;
  }

  private append(r: OutRecord): InRecord {
    const log = this.log(r.topic);
    const partition =
      r.partition ?? (r.key === null ? 0 : partitionForKey(r.key, this.partitionsOf(r.topic)));
    const record: InRecord = {
      topic: r.topic,
      partition,
      offset: String(this.records(r.topic, partition).length),
      key: r.key === null ? null : Buffer.from(r.key),
      value: r.value === null ? null : Buffer.from(r.value),
      headers: { ...r.headers },
      timestamp: String(this.clock.now()),
    };
    log.push(record);
    setImmediate(() => {
      for (const f of this.followers.get(r.topic) ?? []) f(record);
      for (const m of this.members) m.fetchSoon();
    });
    return record;
  }
}
