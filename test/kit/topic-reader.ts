/**
 * A background reader of topics (read_committed, from the beginning or from their current end) that keeps every
 * record once, so a test or a benchmark can wait for what it expects and count what happened.
 */
import { randomBytes } from 'node:crypto';
import type { Consumer, ConsumerConfig, IHeaders, Kafka, KafkaMessage } from 'kafkajs';
import { parseStatusEvents, SCHEDULED_BATCH_HEADER } from '../../src/shared/codecs/task-event.js';
import { deleteGroups, whenReadable } from './kafka.js';
import { waitFor } from './wait.js';

export interface ReadRecord {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
  /** The record's CreateTime. */
  timestamp: number;
  /** `Date.now()` when this reader got it: an upper bound of when it became visible in Kafka. */
  receivedAt: number;
}

/** A record whose value parsed as JSON. */
export interface Received<T> {
  value: T;
  partition: number;
  receivedAt: number;
  record: ReadRecord;
}

export interface TopicSpec {
  topic: string;
  /** Start at the end offsets it has now instead of the beginning (a shared topic full of other runs' records). */
  fromEnd?: boolean;
  /** Records whose value fails this are not kept (a cheap test before JSON parsing). */
  keep?(value: string): boolean;
}

export interface TopicReaderOptions {
  /** The consumer group's prefix (a random suffix is added; the group is deleted by `stop`). @default 'reader' */
  groupPrefix?: string;
  /** Over the reader's consumer defaults (e.g. a longer `retry` to outlive a broker restart). */
  consumer?: Partial<Omit<ConsumerConfig, 'groupId'>>;
}

function decodeHeaders(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {}))
    if (v !== undefined) out[k] = String(Array.isArray(v) ? v[0] : v);
  return out;
}

function toRead(topic: string, partition: number, m: KafkaMessage, receivedAt: number): ReadRecord {
  return {
    topic,
    partition,
    offset: m.offset,
    key: m.key ? m.key.toString('utf8') : null,
    value: m.value ? m.value.toString('utf8') : null,
    headers: decodeHeaders(m.headers),
    timestamp: Number(m.timestamp),
    receivedAt,
  };
}

/**
 * Keeps, per `topic/partition`, the offset after the last record or transaction marker the consumer processed
 * (END_BATCH_PROCESS also fires for batches holding only markers, which eachBatch never sees); returns whether the
 * consumer has joined its group.
 */
export function trackPositions(consumer: Consumer, position: Map<string, number>): () => boolean {
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => (joined = true));
  consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
    const key = `${e.payload.topic}/${e.payload.partition}`;
    const next = Number(e.payload.lastOffset) + 1;
    if (next > (position.get(key) ?? 0)) position.set(key, next);
  });
  return () => joined;
}

/** Start it, read `records`/`values`/`received` (or `caughtUp` first), stop it in afterEach (or finally). */
export class TopicReader {
  readonly records: ReadRecord[] = [];
  private readonly specs: TopicSpec[];
  private readonly byTopic = new Map<string, ReadRecord[]>();
  /** Per topic, the records parsed so far (`parsedUpTo` of `byTopic`): parsed once, however often polled. */
  private readonly parsed = new Map<string, { upTo: number; values: Array<Received<unknown>> }>();
  /** `topic/partition` → offset after the last record or marker read. */
  private readonly position = new Map<string, number>();
  /** `topic/partition` → offset after the last record kept: a batch read again (after a restart) is kept once. */
  private readonly kept = new Map<string, number>();
  private readonly groupId: string;
  private consumer: Consumer | undefined;

  constructor(
    private readonly kafka: () => Kafka,
    topics: Array<string | TopicSpec>,
    private readonly options: TopicReaderOptions = {},
  ) {
    this.specs = topics.map((t) => (typeof t === 'string' ? { topic: t } : t));
    for (const s of this.specs) this.byTopic.set(s.topic, []);
    this.groupId = `${options.groupPrefix ?? 'reader'}-${randomBytes(4).toString('hex')}`;
  }

  /** Resolves once the reader's group has its partitions. */
  async start(): Promise<this> {
    const kafka = this.kafka();
    // On a broker that has just started, even the shared topics may not have their leaders yet.
    await whenReadable(
      kafka,
      this.specs.map((s) => s.topic),
    );
    await this.startAtEnds(kafka);
    this.consumer = kafka.consumer({
      maxWaitTimeInMs: 100,
      readUncommitted: false,
      retry: { retries: 10, restartOnFailure: async () => true },
      ...this.options.consumer,
      groupId: this.groupId,
    });
    const joined = trackPositions(this.consumer, this.position);
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [...this.byTopic.keys()], fromBeginning: true });
    await this.consumer.run({
      eachBatch: async ({ batch }) => {
        const receivedAt = Date.now();
        for (const m of batch.messages) this.keep(batch.topic, batch.partition, m, receivedAt);
      },
    });
    await waitFor(joined, { timeoutMs: 30_000, what: `reader ${this.groupId} to join its group` });
    return this;
  }

  /** A fresh group's committed offsets are where it starts: the current ends of the topics read from the end. */
  private async startAtEnds(kafka: Kafka): Promise<void> {
    const fromEnd = this.specs.filter((s) => s.fromEnd);
    if (fromEnd.length === 0) return;
    const admin = kafka.admin();
    await admin.connect();
    try {
      for (const s of fromEnd) {
        const ends = await admin.fetchTopicOffsets(s.topic);
        // Read up to there already: a partition written nothing more is caught up (caughtUp waited for good).
        for (const o of ends) this.position.set(`${s.topic}/${o.partition}`, Number(o.high));
        await admin.setOffsets({
          groupId: this.groupId,
          topic: s.topic,
          partitions: ends.map((o) => ({ partition: o.partition, offset: o.high })),
        });
      }
    } finally {
      await admin.disconnect();
    }
  }

  private keep(topic: string, partition: number, m: KafkaMessage, receivedAt: number): void {
    const at = `${topic}/${partition}`;
    const offset = Number(m.offset);
    if (offset < (this.kept.get(at) ?? 0)) return;
    this.kept.set(at, offset + 1);
    const spec = this.specs.find((s) => s.topic === topic);
    if (spec?.keep && (!m.value || !spec.keep(m.value.toString('utf8')))) return;
    const r = toRead(topic, partition, m, receivedAt);
    this.records.push(r);
    this.byTopic.get(topic)?.push(r);
  }

  /** The records of one topic whose value is JSON, parsed (each once), in the order read. */
  received<T>(topic: string): Array<Received<T>> {
    const records = this.byTopic.get(topic) ?? [];
    let cache = this.parsed.get(topic);
    if (!cache) this.parsed.set(topic, (cache = { upTo: 0, values: [] }));
    for (; cache.upTo < records.length; cache.upTo++) {
      const record = records[cache.upTo]!;
      if (record.value === null) continue;
      if (record.headers[SCHEDULED_BATCH_HEADER] !== undefined) {
        // The SCHEDULED events of many fires in one record: each is a value, as every reader of events sees it.
        for (const value of parseStatusEvents(Buffer.from(record.value), record.headers))
          cache.values.push({ value, partition: record.partition, receivedAt: record.receivedAt, record });
        continue;
      }
      try {
        const value = JSON.parse(record.value) as unknown;
        cache.values.push({ value, partition: record.partition, receivedAt: record.receivedAt, record });
      } catch {
        // Not JSON (a test's own garbage record, say): not a value.
      }
    }
    return cache.values as Array<Received<T>>;
  }

  /** Parsed JSON values of the records of one topic that match. */
  values<T>(topic: string, filter: (v: T, r: ReadRecord) => boolean = () => true): T[] {
    return this.received<T>(topic)
      .filter((x) => filter(x.value, x.record))
      .map((x) => x.value);
  }

  /** Waits until this reader has every record the topic holds now (its end offsets, markers included). */
  async caughtUp(topic: string, timeoutMs = 30_000): Promise<void> {
    const admin = this.kafka().admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
    const behind = () =>
      ends.filter((p) => Number(p.high) > (this.position.get(`${topic}/${p.partition}`) ?? 0));
    await waitFor(() => behind().length === 0, {
      timeoutMs,
      what: () => `the reader to catch up with ${topic} (partitions ${behind().map((p) => p.partition)})`,
    });
  }

  /** Leaves and deletes its group (what a test or a benchmark leaves behind on the broker is its own business). */
  async stop(): Promise<void> {
    const kafka = this.kafka();
    await this.consumer?.disconnect().catch((err: unknown) => console.error(`reader stop: ${String(err)}`));
    if (this.consumer) await deleteGroups(kafka, [this.groupId]);
  }
}
