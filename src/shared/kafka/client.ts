import { Kafka, CompressionTypes } from 'kafkajs';
import type { ConfigResourceTypes, Producer, Message, RecordMetadata } from 'kafkajs';
import { hostname } from 'node:os';
import type { Clock } from '../clock.js';
import { AppError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { isFencedError, needsNewProducer } from './errors.js';
import { kafkaLogCreator } from './log-bridge.js';
import { followTopic } from './follow.js';
import { activeGroups, describeGroup, groupMembers } from './group-status.js';
import type { GroupMember, GroupStatus } from './group-status.js';
import type { Follower, FollowOptions } from './follow.js';
import { readTopicToEnd } from './read-to-end.js';
import {
  leaveGroupAs,
  PartitionedMessages,
  transactionLedger,
  useKafkajsInternals,
} from './kafkajs/index.js';
import { GroupConsumer } from './group-consumer.js';
import { javaCompatiblePartitioner, partitionForKey } from './partition.js';
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

useKafkajsInternals();

/** Where a record was written. */
export interface Placed {
  partition: number;
  offset: string;
}

/** A topic as {@link KafkaClient.topicLayout} found it. */
export interface TopicLayout {
  clusterId: string;
  /** partition → first offset and end offset (the next to be written). */
  partitions: Map<number, { low: bigint; high: bigint }>;
  /** The topic's `delete.retention.ms`, when the broker told it (DescribeConfigs may not be allowed). */
  deleteRetentionMs?: number;
}

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

  /**
   * `retries`: how often a failed send is retried before it fails (@default 10, about 5 s when Kafka is down; 25 for
   * a transactional producer, whose retries are at most 250 ms apart: also about 5 s).
   */
  producer(
    options: { idempotent?: boolean; transactionalId?: string; retries?: number } = {},
  ): KafkaProducer {
    // A transactional producer's retries stay at most 250 ms apart instead of 1 s. After a broker kill its
    // InitProducerId, AddPartitionsToTxn and first sends wait for the transaction coordinator to move and to abort
    // the interrupted transaction: with 1 s between retries by then, a partition published again up to 1 s after
    // it could (kill -9 of a broker on a three-node cluster: fires 3-4.5 s late instead of 2-3 s).
    const retry = options.transactionalId
      ? { initialRetryTime: 10, retries: options.retries ?? 25, maxRetryTime: 250 }
      : { initialRetryTime: 10, retries: options.retries ?? 10, maxRetryTime: 1000 };
    const make = () =>
      this.kafka.producer({
        // The Java client's murmur2 partitioner: keys land on the same partition as any Java/Go producer.
        createPartitioner: javaCompatiblePartitioner,
        idempotent: options.idempotent ?? true,
        maxInFlightRequests: options.idempotent === false ? undefined : 5,
        ...(options.transactionalId ? { transactionalId: options.transactionalId } : {}),
        // Transactions need a short backoff: the broker completes a commit asynchronously, so the next transaction's
        // first send gets CONCURRENT_TRANSACTIONS and is retried. Measured with kafkajs 2.2.4: 30 back-to-back
        // transactions took 3.3-6.7 s with its default 300 ms first retry, about 1 s with 10 ms (the Java client
        // special-cases this error with 20 ms).
        retry,
      });
    return new KafkaProducer(make, (topics) => this.partitionCounts(topics), options.transactionalId);
  }

  private readonly counts = new Map<string, { n: number; at: number }>();

  /**
   * Partition counts of topics, cached for five minutes as the Java client's metadata (`metadata.max.age.ms`), so a
   * topic that gained partitions is seen within that (keys are placed by this count: until then a key goes where
   * it went before, as from a Java producer whose metadata is as old); `forget` drops one that may have grown.
   */
  private async partitionCounts(
    topics: readonly string[],
    forget: readonly string[] = [],
  ): Promise<Map<string, number>> {
    for (const t of forget) this.counts.delete(t);
    const now = Date.now();
    const missing = [...new Set(topics)].filter(
      (t) => !(now - (this.counts.get(t)?.at ?? -Infinity) < 300_000),
    );
    if (missing.length > 0) {
      const admin = this.kafka.admin();
      await admin.connect();
      try {
        const { topics: meta } = await admin.fetchTopicMetadata({ topics: missing });
        for (const m of meta) this.counts.set(m.name, { n: m.partitions.length, at: now });
      } finally {
        await admin.disconnect();
      }
    }
    return new Map(topics.map((t) => [t, this.counts.get(t)?.n ?? 0]));
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
      minBytes: options.minBytes ?? 1,
      allowAutoTopicCreation: false,
      // Retries capped at 2 s: after a broker outage the consumer is back within a couple of seconds. kafkajs
      // restarts a crashed consumer by itself after retriable errors; see TaskConsumer for the others.
      retry: { initialRetryTime: 100, retries: 8, maxRetryTime: 2000 },
    });
    return new GroupConsumer(
      consumer,
      this.logger,
      options.groupId,
      (memberId) => leaveGroupAs(this.kafka, options.groupId, memberId),
      options.clock,
    );
  }

  /**
   * Every record of a topic up to its end offsets at the time of the call (read_committed); with `tail`, only the
   * last `tail` offsets of each partition; with `partitions`, only those partitions.
   */
  readToEnd(
    topic: string,
    timeoutMs?: number,
    tail?: number,
    partitions?: readonly number[],
  ): Promise<InRecord[]> {
    return readTopicToEnd(this.kafka, topic, timeoutMs, tail, partitions);
  }

  /** Members, assignment and lag per partition of a consumer group on the given topics. */
  groupStatus(groupId: string, topics: string[]): Promise<GroupStatus> {
    return describeGroup(this.kafka, groupId, topics);
  }

  /** A consumer group's state and each member's assignment, as its coordinator has them now. */
  groupMembers(groupId: string): Promise<{ state: string; members: GroupMember[] }> {
    return groupMembers(this.kafka, groupId);
  }

  /** Every consumer group with members now, and what each member is assigned. */
  activeGroups(): ReturnType<typeof activeGroups> {
    return activeGroups(this.kafka);
  }

  /** Calls `onRecord` with every record written to `topic` from now on (or from its start), until stopped. */
  follow(topic: string, onRecord: (r: InRecord) => void, options?: FollowOptions): Promise<Follower> {
    // A follower mostly waits: long polls, and a session long enough for a rebuild's big batches. With `batchMs`,
    // the broker holds each fetch until it has 64 KiB or `batchMs` passed.
    const batchMs = options?.batchMs;
    const consumer = (groupId: string) =>
      this.consumer({
        groupId,
        maxWaitTimeMs: batchMs ?? 1000,
        minBytes: batchMs === undefined ? 1 : 64 * 1024,
        sessionTimeoutMs: 10_000,
      });
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

  /**
   * What a materialised view of `topic` checks its checkpoint against: the cluster's id, each partition's first
   * and end offsets, and the topic's `delete.retention.ms` (how long a tombstone stays readable).
   */
  async topicLayout(topic: string): Promise<TopicLayout> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const { clusterId } = await admin.describeCluster();
      const offsets = await admin.fetchTopicOffsets(topic);
      // Optional: a principal without DescribeConfigs on the topic gets no figure (the caller assumes a default).
      const retention = await admin
        .describeConfigs({
          includeSynonyms: false,
          // ConfigResourceTypes.TOPIC: kafkajs does not export its enums to ES modules by name.
          resources: [{ type: 2 as ConfigResourceTypes, name: topic, configNames: ['delete.retention.ms'] }],
        })
        .then(
          ({ resources }) => Number(resources[0]?.configEntries[0]?.configValue),
          () => Number.NaN,
        );
      return {
        clusterId,
        partitions: new Map(offsets.map((o) => [o.partition, { low: BigInt(o.low), high: BigInt(o.high) }])),
        ...(Number.isFinite(retention) && retention >= 0 ? { deleteRetentionMs: retention } : {}),
      };
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
    /** What failed: the commit, the abort, or a send (then aborted). */
    failed: 'commit' | 'abort' | 'send' = mayHaveCommitted ? 'commit' : 'abort',
  ) {
    super(
      'KAFKA',
      `${failed} of a transaction failed (${errorMessage(cause)}): ` +
        `${mayHaveCommitted ? 'its outcome is unknown' : 'it was not committed'} until the producer is reset`,
      { retriable: true, cause },
    );
  }
}

/**
 * The one producer every part uses (task messages, events, state, commands, users): sends records to several topics
 * in one request per broker, plain, idempotent or in transactions.
 */
export class KafkaProducer {
  private producer: Producer;
  /** Set by a transaction kafkajs could not end; cleared by `reset()`. */
  private inDoubt: TransactionInDoubtError | undefined;

  /**
   * `make` builds the kafkajs producer; `reset()` builds a fresh one. `counts` gives partition counts, to check that
   * every partition a send was for is in its answer (see {@link RecordsDroppedError}).
   */
  constructor(
    private readonly make: () => Producer,
    private readonly counts?: (
      topics: readonly string[],
      forget?: readonly string[],
    ) => Promise<Map<string, number>>,
    /** Its transactional id: what its transactions write is counted (see `transactionLedger`). */
    private readonly transactionalId?: string,
  ) {
    this.producer = make();
  }

  /**
   * Each record's partition, fixed before sending: its own, else its key's by the cached partition count (what the
   * partitioner picks from the same count); undefined for a record without either, or of a topic whose count is
   * not known (kafkajs's partitioner picks one then). kafkajs sends a message with a partition to it, so the hash is
   * computed once per record, and the answer can be checked against exactly these.
   */
  private async placementsOf(
    records: readonly OutRecord[],
    /** Picks the partition of a record without key or partition, of a topic of `n` partitions; none: kafkajs does. */
    keyless?: (n: number) => number,
  ): Promise<Array<number | undefined>> {
    if (!this.counts) return records.map((r) => r.partition);
    const topics = new Set<string>();
    for (const r of records) topics.add(r.topic);
    const counts = await this.counts([...topics]);
    return records.map((r) => {
      if (r.partition !== undefined) return r.partition;
      const n = counts.get(r.topic) ?? 0;
      if (n === 0) return undefined;
      if (r.key !== null) return partitionForKey(r.key, n);
      return keyless?.(n);
    });
  }

  /**
   * {@link placementsOf} before a send; when the counts cannot be looked up (a topic that does not exist yet, which
   * a broker with `auto.create.topics.enable` makes as the send writes to it), only the records' own partitions, and
   * `undefined` for the placements to be looked up after the send (`checkAnswered`).
   */
  private async placementsBefore(
    records: readonly OutRecord[],
  ): Promise<{ messages: Array<number | undefined>; checked: Array<number | undefined> | undefined }> {
    try {
      const placements = await this.placementsOf(records);
      return { messages: placements, checked: placements };
    } catch {
      return { messages: records.map((r) => r.partition), checked: undefined };
    }
  }

  /**
   * Throws when the answer to a send lacks a partition it was for (kafkajs dropped those records) or, with
   * `twice`, answers for one partition more than once (kafkajs wrote those records twice).
   */
  private async checkAnswered(
    records: readonly OutRecord[],
    placed: ReadonlyArray<number | undefined> | undefined,
    answer: ReadonlyArray<{ topicName: string; partition: number }>,
    twice: boolean,
  ): Promise<void> {
    if (!this.counts) return;
    const placements = placed ?? (await this.placementsOf(records));
    const expected = new Set<string>();
    records.forEach((r, i) => {
      const p = placements[i];
      if (p !== undefined) expected.add(`${r.topic}/${p}`);
    });
    const got = new Map<string, number>();
    for (const m of answer) {
      const k = `${m.topicName}/${m.partition}`;
      got.set(k, (got.get(k) ?? 0) + 1);
    }
    const missing = [...expected].filter((k) => !got.has(k));
    const repeated = twice ? [...got].filter(([, n]) => n > 1).map(([k]) => k) : [];
    if (missing.length === 0 && repeated.length === 0) return;
    // A partition count may have moved under the send (a leader change, a topic deleted and made again): the
    // counts of the topics answered for in part are looked up again next time.
    await this.counts([], [...new Set(missing.map((k) => k.slice(0, k.lastIndexOf('/'))))]);
    throw new RecordsDroppedError(missing, repeated);
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
    await this.sendBatch(records);
  }

  /**
   * Sends all records (acks=all) in one request per broker and resolves to where each was written, in order. Each
   * record's partition is fixed before sending (its key's partition, as the partitioner would pick it from the
   * cached partition count; one at random for a record without key), so the offset of each follows from the base
   * offset the broker gives its partition's batch.
   */
  async sendPlaced(records: readonly OutRecord[]): Promise<Placed[]> {
    if (records.length === 0) return [];
    if (!this.counts) throw new Error('sendPlaced needs the partition counts of its topics');
    const placements = await this.placementsOf(records, (n) => Math.floor(Math.random() * n));
    const placed = records.map((r, i) => {
      const partition = placements[i];
      if (partition === undefined)
        throw new AppError('TOPIC_MISSING', `topic ${r.topic} has no partitions (does it exist?)`);
      return r.partition === partition ? r : { ...r, partition };
    });
    const answer = await this.sendBatch(placed);
    const base = new Map(answer.map((a) => [`${a.topicName}/${a.partition}`, a.baseOffset]));
    const next = new Map<string, bigint>();
    return placed.map((r) => {
      const k = `${r.topic}/${r.partition!}`;
      const first = base.get(k);
      if (first === undefined) throw new Error(`no offset for ${k} in the answer to a send`);
      const offset = next.get(k) ?? BigInt(first);
      next.set(k, offset + 1n);
      return { partition: r.partition!, offset: String(offset) };
    });
  }

  private async sendBatch(records: readonly OutRecord[]): Promise<RecordMetadata[]> {
    try {
      const placements = await this.placementsBefore(records);
      const answer = await this.producer.sendBatch({
        acks: -1,
        compression: CompressionTypes.None,
        topicMessages: byTopic(records, placements.messages),
      });
      // Records written twice cannot be taken back here: at-least-once, as for any retried send.
      await this.checkAnswered(records, placements.checked, answer, false);
      return answer;
    } catch (err) {
      // Sequence numbers kafkajs can no longer repair (OUT_OF_ORDER_SEQUENCE_NUMBER after a leader change, kafkajs
      // #598) or records it dropped: a fresh producer (a new producer id) starts clean for the caller's retry.
      if (err instanceof RecordsDroppedError || needsNewProducer(err)) await this.replace();
      throw err;
    }
  }

  private async replace(): Promise<void> {
    const old = this.producer;
    this.producer = this.make();
    await old.disconnect().catch(() => undefined);
    await this.producer.connect();
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
    const placements = await this.placementsBefore(records);
    const id = this.transactionalId;
    if (id) transactionLedger.begin(id);
    const tx = await this.producer.transaction();
    try {
      await this.checkAnswered(
        records,
        placements.checked,
        await tx.sendBatch({ acks: -1, topicMessages: byTopic(records, placements.messages) }),
        true,
      );
      // The answer can hide a request that wrote records again (see TransactionalProduceError): count them.
      const written = id ? await transactionLedger.end(id) : 0;
      if (written > records.length) throw new RecordsDroppedError([], [], { written, sent: records.length });
    } catch (err) {
      // Requests of the send still in flight end inside the transaction this aborts, not in a later one.
      if (id) await transactionLedger.end(id);
      if (isFencedError(err)) throw err;
      try {
        await tx.abort();
      } catch (abortErr) {
        if (isFencedError(abortErr)) throw abortErr;
      }
      // Not committed. kafkajs's sequence numbers may no longer match the broker's (it rolls back every partition
      // of a produce request one of whose partitions failed, written or not): the next transaction goes through a
      // fresh producer, whose new epoch starts every sequence again.
      this.inDoubt = new TransactionInDoubtError(false, err, 'send');
      throw this.inDoubt;
    }
    try {
      await tx.commit();
    } catch (err) {
      if (!isFencedError(err)) this.inDoubt = new TransactionInDoubtError(true, err);
      throw this.inDoubt ?? err;
    }
  }
}

/**
 * The answer to a send lacked partitions it was for, or answered for some twice. kafkajs 2.2.4 does both after a
 * leader change: a send whose request to one broker failed is retried towards the brokers that have not answered
 * yet, with every partition mapped to its leader again. A partition of the failed request that moved to a broker
 * that had answered is never sent (no error), and a partition already written through a broker that answered is
 * written again if it moved to one that had not. Inside a transaction those fires would be lost or doubled: the
 * transaction is aborted instead and sent again.
 */
export class RecordsDroppedError extends AppError {
  constructor(
    readonly partitions: string[],
    readonly twice: string[] = [],
    /** Records the transaction's produce requests wrote, against those it sent, when more. */
    readonly counted?: { written: number; sent: number },
  ) {
    super(
      'KAFKA',
      [
        partitions.length > 0 ? `kafkajs did not send the records of ${partitions.join(', ')}` : '',
        twice.length > 0 ? `kafkajs wrote the records of ${twice.join(', ')} twice` : '',
        counted ? `kafkajs wrote ${counted.written} records for ${counted.sent}` : '',
      ]
        .filter(Boolean)
        .join('; ') + ' (a leader changed during the send)',
      { retriable: true },
    );
  }
}

/**
 * A message as kafkajs 2.2.4 is given it, in the one shape its produce request copies fast. That request encodes
 * each message as `Record({ ...message, offsetDelta: i, timestampDelta })`, and in the V8 of Node 20 a spread
 * followed by properties its source lacks takes a slow path: about 1 µs per message against 20-25 ns when the
 * message already has both (an overwrite). It was 10-12 % of a firing scheduler's CPU. So every message carries
 * both (kafkajs sets them again) and a `partition`: its placement (undefined: the partitioner picks one).
 */
interface ShapedMessage extends Message {
  partition: number | undefined;
  offsetDelta: number;
  timestampDelta: number;
}

/** Groups records by topic, keeping their order, for one produce request; each at its placement. */
export function byTopic(
  records: readonly OutRecord[],
  placements: ReadonlyArray<number | undefined>,
): Array<{ topic: string; messages: ShapedMessage[] }> {
  const groups = new Map<string, ShapedMessage[]>();
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as OutRecord;
    let list = groups.get(r.topic);
    // Grouped by partition in linear time by kafkajs (see PartitionedMessages).
    if (!list) groups.set(r.topic, (list = new PartitionedMessages<ShapedMessage>()));
    list.push({
      key: r.key,
      value: r.value,
      headers: r.headers,
      partition: placements[i],
      offsetDelta: 0,
      timestampDelta: 0,
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
  /** The broker answers a fetch once it has this many bytes, or after `maxWaitTimeMs`. @default 1 */
  minBytes?: number;
  /** What heartbeats and joins are stamped with (the caller's readiness reads them against it). @default systemClock */
  clock?: Clock;
}
