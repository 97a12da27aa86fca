import { Kafka, Partitioners, CompressionTypes } from 'kafkajs';
import type { Producer, Message } from 'kafkajs';
import { hostname } from 'node:os';
import { AppError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { kafkaLogCreator } from './log-bridge.js';
import { followTopic } from './follow.js';
import { activeGroups, describeGroup } from './group-status.js';
import type { GroupStatus } from './group-status.js';
import type { Follower, FollowOptions } from './follow.js';
import { readTopicToEnd } from './read-to-end.js';
import { fixIdleRequestQueueLoop } from './request-queue-fix.js';
import { GroupConsumer } from './group-consumer.js';
import { preflight } from './preflight.js';
import { PLAINTEXT, describeConnection } from './security.js';
import type { KafkaConnection } from './security.js';
import type { InRecord, OutRecord } from './types.js';

export interface KafkaOptions {
  brokers: string[];
  /** @default 'taskmanager' */
  clientId?: string;
  logger: Logger;
  /** Per-request timeout. @default 10000 */
  requestTimeoutMs?: number;
  /** TLS and SASL (from `--kafka-config`). @default plaintext */
  connection?: KafkaConnection;
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
      ...(options.connection?.ssl ? { ssl: options.connection.ssl } : {}),
      ...(options.connection?.sasl ? { sasl: options.connection.sasl } : {}),
    });
  }

  /** "127.0.0.1:9093 (SASL_SSL SCRAM-SHA-512 as taskscheduler)": for log lines; never a secret. */
  describe(): string {
    return `${this.options.brokers.join(',')} (${describeConnection(this.options.connection ?? PLAINTEXT)})`;
  }

  /**
   * Tries the bootstrap brokers before the program starts its work: a wrong password, an untrusted certificate or a
   * protocol mismatch throws one clear line (exit 1); an unreachable cluster is only logged (Kafka may come later).
   */
  async preflight(): Promise<void> {
    const checks = await preflight(this.options.brokers, this.options.connection ?? PLAINTEXT);
    if (checks.some((c) => c.ok)) return;
    for (const c of checks) if (!c.ok) this.logger.warn(`${c.reason}; will keep trying`);
  }

  /** `retries`: how often a failed send is retried before it fails (@default 24, about 10 s when Kafka is down). */
  producer(options: { idempotent?: boolean; transactionalId?: string; retries?: number } = {}): TaskProducer {
    const make = () =>
      this.kafka.producer({
        // The Java client's murmur2 partitioner: keys land on the same partition as any Java/Go producer.
        createPartitioner: Partitioners.DefaultPartitioner,
        idempotent: options.idempotent ?? true,
        maxInFlightRequests: options.idempotent === false ? undefined : 5,
        ...(options.transactionalId ? { transactionalId: options.transactionalId } : {}),
        // Transactions need a short backoff: the broker completes a commit asynchronously, so the next transaction's
        // first send gets CONCURRENT_TRANSACTIONS and is retried. Measured with kafkajs 2.2.4: 30 back-to-back
        // transactions took 3.3-6.7 s with its default 300 ms first retry, about 1 s with 10 ms (the Java client
        // special-cases this error with 20 ms).
        // Retries capped at 500 ms and 24 of them (about 10 s): a partition leader or transaction coordinator that
        // crashed keeps its role until the cluster fences it (broker.session.timeout.ms, 4-9 s), and a send retried
        // in place through that moves on within 0.5 s of the new leader, where a failed transaction goes through an
        // abort and our own backoff (measured in test/soak/cluster-failover.test.ts).
        retry: { initialRetryTime: 10, retries: options.retries ?? 24, maxRetryTime: 500 },
      });
    return new TaskProducer(make);
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
    return new GroupConsumer(consumer, this.logger, options.groupId, (memberId) =>
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

  /** Every consumer group with members now, and what each member is assigned. */
  activeGroups(): ReturnType<typeof activeGroups> {
    return activeGroups(this.kafka);
  }

  /** Calls `onRecord` with every record written to `topic` from now on (or from its start), until stopped. */
  follow(topic: string, onRecord: (r: InRecord) => void, options?: FollowOptions): Promise<Follower> {
    // A follower mostly waits: long polls, and a session long enough for a rebuild's big batches.
    const consumer = (groupId: string) =>
      this.consumer({ groupId, maxWaitTimeMs: 1000, sessionTimeoutMs: 10_000 });
    return followTopic(this.kafka, consumer, topic, onRecord, options);
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

/**
 * A transaction kafkajs could not end: its commit (outcome unknown: the coordinator may have it) or its abort failed,
 * and kafkajs 2.2.4 then stays in COMMITTING or ABORTING for good, refusing every later transaction. The producer
 * must be `reset()` (a fresh one with the same transactional id, whose InitProducerId makes the coordinator finish
 * that transaction one way or the other) before it is used again.
 */
export class TransactionInDoubtError extends AppError {
  constructor(
    /** True when the commit was sent: its records may be committed. False: they were not (the abort failed). */
    readonly mayHaveCommitted: boolean,
    cause: unknown,
  ) {
    super(
      'KAFKA',
      `${mayHaveCommitted ? 'commit' : 'abort'} of a transaction failed (${errorMessage(cause)}): ` +
        `${mayHaveCommitted ? 'its outcome is unknown' : 'it was not committed'} until the producer is reset`,
      { retriable: true, cause },
    );
  }
}

/** A producer that sends records to several topics in one request per broker. */
export class TaskProducer {
  private producer: Producer;
  /** Set by a transaction kafkajs could not end; cleared by `reset()`. */
  private inDoubt: TransactionInDoubtError | undefined;

  /** `make` builds the kafkajs producer; `reset()` builds a fresh one. */
  constructor(private readonly make: () => Producer) {
    this.producer = make();
  }

  /** Whether a transaction could not be ended: `reset()` is needed before the next one. */
  get needsReset(): boolean {
    return this.inDoubt !== undefined;
  }

  /**
   * Replaces a producer left in doubt by a fresh one with the same transactional id and fences with it: the
   * coordinator then completes or aborts the transaction in doubt before it answers. Only its owner may call this:
   * it fences every other producer of the id too.
   */
  async reset(): Promise<void> {
    await this.producer.disconnect().catch(() => undefined);
    this.producer = this.make();
    await this.producer.connect();
    await this.fence();
    this.inDoubt = undefined;
  }

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
    if (this.inDoubt) throw this.inDoubt;
    const tx = await this.producer.transaction();
    try {
      await tx.sendBatch({ acks: -1, topicMessages: byTopic(records) });
    } catch (err) {
      try {
        await tx.abort();
      } catch (abortErr) {
        this.inDoubt = isFencedError(abortErr) ? undefined : new TransactionInDoubtError(false, abortErr);
      }
      throw this.inDoubt ?? err;
    }
    try {
      await tx.commit();
    } catch (err) {
      if (!isFencedError(err)) this.inDoubt = new TransactionInDoubtError(true, err);
      throw this.inDoubt ?? err;
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
