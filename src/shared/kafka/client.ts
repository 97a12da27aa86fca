import { Kafka, Partitioners, CompressionTypes } from 'kafkajs';
import type { Consumer, Producer, Message } from 'kafkajs';
import { hostname } from 'node:os';
import type { Logger } from '../logger.js';
import { kafkaLogCreator } from './log-bridge.js';
import { followTopic } from './follow.js';
import { describeGroup } from './group-status.js';
import type { GroupStatus } from './group-status.js';
import type { Follower, FollowOptions } from './follow.js';
import { readTopicToEnd } from './read-to-end.js';
import { fixIdleRequestQueueLoop } from './request-queue-fix.js';
import { toInRecord } from './records.js';
import type { GroupAssignment, InRecord, OutRecord, PartitionBatch } from './types.js';

export interface KafkaOptions {
  brokers: string[];
  /** @default 'taskmanager' */
  clientId?: string;
  logger: Logger;
  /** Per-request timeout. @default 10000 */
  requestTimeoutMs?: number;
}

fixIdleRequestQueueLoop();

/** One door to Kafka: every client we use, created with our defaults. */
export class KafkaClient {
  private readonly kafka: Kafka;
  readonly logger: Logger;

  constructor(readonly options: KafkaOptions) {
    this.logger = options.logger;
    this.kafka = new Kafka({
      brokers: options.brokers,
      clientId: options.clientId ?? `taskmanager-${hostname()}-${process.pid}`,
      logCreator: kafkaLogCreator(options.logger),
      connectionTimeout: 3000,
      requestTimeout: options.requestTimeoutMs ?? 10_000,
      // Short first retry: a broker that is briefly unavailable is retried quickly; our callers add their own
      // outer retry loop with logging for longer outages.
      retry: { initialRetryTime: 100, retries: 5, maxRetryTime: 2000 },
    });
  }

  /** `retries`: how often a failed send is retried before it fails (@default 10, about 5 s when Kafka is down). */
  producer(options: { idempotent?: boolean; transactionalId?: string; retries?: number } = {}): TaskProducer {
    const producer = this.kafka.producer({
      // The Java client's murmur2 partitioner: keys land on the same partition as any Java/Go producer.
      createPartitioner: Partitioners.DefaultPartitioner,
      idempotent: options.idempotent ?? true,
      maxInFlightRequests: options.idempotent === false ? undefined : 5,
      ...(options.transactionalId ? { transactionalId: options.transactionalId } : {}),
      // Transactions need a short backoff after CONCURRENT_TRANSACTIONS (see shared/kafkajs-notes.md).
      retry: { initialRetryTime: 10, retries: options.retries ?? 10, maxRetryTime: 1000 },
    });
    return new TaskProducer(producer);
  }

  consumer(options: ConsumerOptions): GroupConsumer {
    const consumer = this.kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs ?? 6000,
      heartbeatInterval: options.heartbeatIntervalMs ?? 1000,
      rebalanceTimeout: options.rebalanceTimeoutMs ?? 30_000,
      readUncommitted: false,
      maxBytesPerPartition: options.maxBytesPerPartition ?? 1024 * 1024,
      maxWaitTimeInMs: options.maxWaitTimeMs ?? 100,
      allowAutoTopicCreation: false,
      // Retries capped at 2 s: after a broker outage the consumer is back within a couple of seconds. kafkajs
      // restarts a crashed consumer by itself after retriable errors; see TaskConsumer for the others.
      retry: { initialRetryTime: 100, retries: 8, maxRetryTime: 2000 },
    });
    return new GroupConsumer(consumer, this.logger, (memberId) =>
      leaveGroupAs(this.kafka, options.groupId, memberId),
    );
  }

  /**
   * Every record of a topic up to its end offsets at the time of the call (read_committed); with `tail`, only the
   * last `tail` offsets of each partition.
   */
  readToEnd(topic: string, timeoutMs?: number, tail?: number): Promise<InRecord[]> {
    return readTopicToEnd(this.kafka, topic, timeoutMs, tail);
  }

  /** Members, assignment and lag per partition of a consumer group on the given topics. */
  groupStatus(groupId: string, topics: string[]): Promise<GroupStatus> {
    return describeGroup(this.kafka, groupId, topics);
  }

  /** Calls `onRecord` with every record written to `topic` from now on (or from its start), until stopped. */
  follow(topic: string, onRecord: (r: InRecord) => void, options?: FollowOptions): Promise<Follower> {
    return followTopic(this.kafka, topic, onRecord, options);
  }

  /** Number of partitions of a topic (throws when it does not exist). */
  async partitionCount(topic: string): Promise<number> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      const n = topics[0]?.partitions.length ?? 0;
      if (n === 0) throw new Error(`topic ${topic} has no partitions`);
      return n;
    } finally {
      await admin.disconnect();
    }
  }

  /** End offset of each partition of a topic (the next offset to be written). */
  async endOffsets(topic: string): Promise<Map<number, bigint>> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(topic);
      return new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
    } finally {
      await admin.disconnect();
    }
  }

  /** Topics that exist on the cluster, among the given ones. */
  async existingTopics(topics: string[]): Promise<Set<string>> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const all = new Set(await admin.listTopics());
      return new Set(topics.filter((t) => all.has(t)));
    } finally {
      await admin.disconnect();
    }
  }
}

/** True when a newer producer with the same transactional id took over: this one can never commit again. */
export function isFencedError(err: unknown): boolean {
  const e = err as { type?: string; message?: string; cause?: unknown } | undefined;
  if (!e) return false;
  if (e.type === 'INVALID_PRODUCER_EPOCH' || e.type === 'PRODUCER_FENCED') return true;
  if (/INVALID_PRODUCER_EPOCH|PRODUCER_FENCED|fenced/i.test(e.message ?? '')) return true;
  return e.cause !== undefined && e.cause !== err && isFencedError(e.cause);
}

/** A producer that sends records to several topics in one request per broker. */
export class TaskProducer {
  constructor(private readonly producer: Producer) {}

  connect(): Promise<void> {
    return this.producer.connect();
  }

  disconnect(): Promise<void> {
    return this.producer.disconnect();
  }

  /** Sends all records (acks=all) and resolves once the broker acknowledged every one. */
  async send(records: readonly OutRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.producer.sendBatch({
      acks: -1,
      compression: CompressionTypes.None,
      topicMessages: byTopic(records),
    });
  }

  /** Sends one record (acks=all); resolves to where it was written. */
  async sendOne(record: OutRecord): Promise<{ partition: number; offset: string }> {
    const [meta] = await this.producer.send({
      topic: record.topic,
      acks: -1,
      messages: byTopic([record])[0]!.messages,
    });
    if (!meta?.baseOffset) throw new Error(`no offset in the answer to a send to ${record.topic}`);
    return { partition: meta.partition, offset: meta.baseOffset };
  }

  /**
   * Takes over the transactional id: kafkajs sends InitProducerId (which bumps the epoch and aborts whatever an
   * older producer with this id left open) on the first `transaction()`, not on `connect()`.
   */
  async fence(): Promise<void> {
    const tx = await this.producer.transaction();
    await tx.abort();
  }

  /** Sends all records in one transaction (needs a transactionalId): read_committed readers see all or none. */
  async sendInTransaction(records: readonly OutRecord[]): Promise<void> {
    const tx = await this.producer.transaction();
    try {
      await tx.sendBatch({ acks: -1, topicMessages: byTopic(records) });
      await tx.commit();
    } catch (err) {
      await tx.abort().catch(() => undefined);
      throw err;
    }
  }
}

/** Groups records by topic, keeping their order, for one produce request. */
function byTopic(records: readonly OutRecord[]): Array<{ topic: string; messages: Message[] }> {
  const groups = new Map<string, Message[]>();
  for (const r of records) {
    let list = groups.get(r.topic);
    if (!list) groups.set(r.topic, (list = []));
    list.push({
      key: r.key,
      value: r.value,
      headers: r.headers,
      ...(r.partition === undefined ? {} : { partition: r.partition }),
    });
  }
  return [...groups].map(([topic, messages]) => ({ topic, messages }));
}

export interface ConsumerOptions {
  groupId: string;
  /**
   * How long the group waits for a silent member (crashed, or partitioned away) before giving its partitions to
   * the others; also how long a restarted member can wait for its previous self to expire. Kafka's minimum.
   * @default 6000
   */
  sessionTimeoutMs?: number;
  /** @default 1000 */
  heartbeatIntervalMs?: number;
  /** @default 30000 */
  rebalanceTimeoutMs?: number;
  /** @default 1048576 */
  maxBytesPerPartition?: number;
  /** @default 100 */
  maxWaitTimeMs?: number;
}

export interface RunOptions {
  /** Partitions whose batches are handled at the same time. */
  partitionsConsumedConcurrently: number;
  /** False: never commit (a reader that re-reads from the beginning on every assignment). @default true */
  autoCommit?: boolean;
  eachBatch(batch: PartitionBatch): Promise<void>;
}

/** A consumer-group member: subscribe, run batches, stop (finishing batches, leaving the group). */
export class GroupConsumer {
  private joinedAt: number | undefined;
  private lastHeartbeatAt: number | undefined;
  private rebalances = 0;
  private memberId: string | undefined;
  /** The member id of this member before kafkajs restarted it, until the group has let it go. */
  private stale: string | undefined;

  constructor(
    private readonly consumer: Consumer,
    private readonly logger: Logger,
    private readonly leaveAs?: (memberId: string) => Promise<void>,
  ) {
    const e = consumer.events;
    consumer.on(e.GROUP_JOIN, (ev) => {
      this.joinedAt = Date.now();
      this.lastHeartbeatAt = this.joinedAt;
      this.rebalances++;
      this.memberId = ev.payload.memberId;
      this.stale = undefined;
    });
    // kafkajs restarts a crashed consumer as a new member; the group keeps the old one (and waits for it at the
    // next rebalance) until its session times out. Leave as the old member as soon as the coordinator answers.
    consumer.on(e.CRASH, (ev) => {
      if (!ev.payload.restart || !this.memberId || !this.leaveAs) return;
      this.stale = this.memberId;
      void this.leaveStale(this.memberId);
    });
    consumer.on(e.HEARTBEAT, () => (this.lastHeartbeatAt = Date.now()));
    // A crash, a stop or a lost connection ends the membership until the next join.
    for (const end of [e.CRASH, e.STOP, e.DISCONNECT]) consumer.on(end, () => (this.joinedAt = undefined));
  }

  private async leaveStale(memberId: string): Promise<void> {
    for (let attempt = 0; attempt < 120 && this.stale === memberId; attempt++) {
      try {
        await this.leaveAs?.(memberId);
        this.logger.debug(`left the group as this member's previous incarnation ${memberId}`);
        return;
      } catch (err) {
        // The group already let it go (its session ended): nothing left to do.
        if ((err as { type?: string }).type === 'UNKNOWN_MEMBER_ID') return;
        // Broker or coordinator still away: try again shortly.
        await new Promise((r) => setTimeout(r, 250));
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
    await this.consumer.run({
      autoCommit: options.autoCommit ?? true,
      // Interval 0: every commitIfNecessary() commits what is resolved. The batch worker calls it through a
      // coalescing pump as offsets move; kafkajs also commits at the end of each batch, before a rebalance and
      // when stopping.
      autoCommitInterval: 0,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: options.partitionsConsumedConcurrently,
      eachBatch: async (p) => {
        const { batch } = p;
        await options.eachBatch({
          topic: batch.topic,
          partition: batch.partition,
          highWatermark: batch.highWatermark,
          records: batch.messages.map((m) => toInRecord(batch.topic, batch.partition, m)),
          lastOffset: () => batch.lastOffset(),
          resolveOffset: (o) => p.resolveOffset(o),
          commitIfNecessary: () => p.commitOffsetsIfNecessary(),
          heartbeat: () => p.heartbeat(),
          isRunning: () => p.isRunning(),
          isStale: () => p.isStale(),
        });
      },
    });
  }

  /** Stops fetching these partitions; membership (heartbeats) goes on. Kept across rebalances while assigned. */
  pause(topic: string, partitions: number[]): void {
    this.consumer.pause([{ topic, partitions }]);
  }

  resume(topic: string, partitions: number[]): void {
    this.consumer.resume([{ topic, partitions }]);
  }

  /** Stops fetching, waits for running batches, commits, leaves the group. */
  stop(): Promise<void> {
    return this.consumer.stop();
  }

  disconnect(): Promise<void> {
    this.logger.debug('disconnecting consumer');
    return this.consumer.disconnect();
  }
}

interface InternalCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  findGroupCoordinator(o: {
    groupId: string;
  }): Promise<{ leaveGroup(o: { groupId: string; memberId: string }): Promise<unknown> }>;
}

/**
 * Sends LeaveGroup for `memberId`: kafkajs has no public call for it, so this uses the cluster factory every
 * kafkajs client is built with (found by its symbol's description; a kafkajs without it fails loudly here).
 */
async function leaveGroupAs(kafka: Kafka, groupId: string, memberId: string): Promise<void> {
  const key = Object.getOwnPropertySymbols(kafka).find(
    (s) => s.description === 'private:Kafka:createCluster',
  );
  const create = key ? (kafka as unknown as Record<symbol, unknown>)[key] : undefined;
  if (typeof create !== 'function')
    throw new Error('this kafkajs has no cluster factory to send LeaveGroup with');
  const cluster = (create as (o: object) => InternalCluster)({});
  await cluster.connect();
  try {
    const coordinator = await cluster.findGroupCoordinator({ groupId });
    await coordinator.leaveGroup({ groupId, memberId });
  } finally {
    await cluster.disconnect().catch(() => undefined);
  }
}
