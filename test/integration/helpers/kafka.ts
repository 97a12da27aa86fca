import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import type { Consumer, IHeaders, KafkaMessage } from 'kafkajs';
import { createTopicsReady } from '../../../bench/lib/kafka-bench.js';

export function brokers(): string {
  return inject('brokers');
}

export function kafka(): Kafka {
  return new Kafka({ brokers: brokers().split(','), logLevel: logLevel.NOTHING, clientId: 'tests' });
}

/** A name no other test uses: `<prefix>-<random>`. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** Creates task topics (with their DLQs) for one test. */
export async function createTopics(names: string[], partitions = 12): Promise<void> {
  await createTopicsReady(
    kafka(),
    names.flatMap((topic) => [
      { topic, numPartitions: partitions },
      { topic: `${topic}.dlq`, numPartitions: partitions },
    ]),
  );
}

export async function deleteTopics(names: string[]): Promise<void> {
  const admin = kafka().admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const topics = names.flatMap((t) => [t, `${t}.dlq`]).filter((t) => existing.has(t));
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } finally {
    await admin.disconnect();
  }
}

export async function produce(
  topic: string,
  messages: Array<{
    key?: string | null;
    value: string | Buffer | null;
    headers?: IHeaders;
    partition?: number;
  }>,
): Promise<void> {
  // Idempotent: a send retried after an error the broker recovered from (a partition not led yet) must not write
  // its records twice; a test then saw tasks "run twice" that it had itself published twice.
  const producer = kafka().producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, messages });
  } finally {
    await producer.disconnect();
  }
}

export interface ReadRecord {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

function decodeHeaders(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {}))
    if (v !== undefined) out[k] = String(Array.isArray(v) ? v[0] : v);
  return out;
}

function toRead(topic: string, partition: number, m: KafkaMessage): ReadRecord {
  return {
    topic,
    partition,
    offset: m.offset,
    key: m.key ? m.key.toString('utf8') : null,
    value: m.value ? m.value.toString('utf8') : null,
    headers: decodeHeaders(m.headers),
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

/**
 * Reads topics from the beginning (read_committed) in the background and keeps every record, so a test can
 * `waitFor` what it expects. Stop it in afterEach.
 */
export class TopicReader {
  readonly records: ReadRecord[] = [];
  /** `topic/partition` → offset after the last record or marker read. */
  private readonly position = new Map<string, number>();
  private consumer: Consumer | undefined;

  /** `client`: the cluster to read (default the tests' broker). */
  constructor(
    private readonly topics: string[],
    private readonly client: () => Kafka = kafka,
  ) {}

  async start(): Promise<this> {
    this.consumer = this.client().consumer({
      groupId: uniqueName('reader'),
      maxWaitTimeInMs: 100,
      retry: { retries: 10, restartOnFailure: async () => true },
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: this.topics, fromBeginning: true });
    const joined = trackPositions(this.consumer, this.position);
    await this.consumer.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) this.records.push(toRead(batch.topic, batch.partition, m));
      },
    });
    const deadline = Date.now() + 30_000;
    while (!joined() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this;
  }

  /** Parsed JSON values of the records of one topic that match. */
  values<T>(topic: string, filter: (v: T, r: ReadRecord) => boolean = () => true): T[] {
    const out: T[] = [];
    for (const r of this.records) {
      if (r.topic !== topic || r.value === null) continue;
      let v: T;
      try {
        v = JSON.parse(r.value) as T;
      } catch {
        continue;
      }
      if (filter(v, r)) out.push(v);
    }
    return out;
  }

  /** Waits until this reader has every record the topic holds now. */
  async caughtUp(topic: string, timeoutMs = 30_000): Promise<void> {
    const admin = this.client().admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
    const behind = () =>
      ends.filter((p) => Number(p.high) > (this.position.get(`${topic}/${p.partition}`) ?? 0));
    const deadline = Date.now() + timeoutMs;
    while (behind().length > 0) {
      if (Date.now() > deadline)
        throw new Error(
          `reader did not catch up with ${topic} (partitions ${behind().map((p) => p.partition)})`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
  }
}

/**
 * A fresh task topic and a reader of it for each test of the calling suite (registered as beforeEach and
 * afterEach; the afterEach also kills the CLIs the test started). Read `topic` and `reader` inside tests.
 */
export function useTaskTopic(hooks: {
  beforeEach(fn: () => Promise<void>): void;
  afterEach(fn: () => Promise<void>): void;
  killAll(): Promise<void>;
}): { readonly topic: string; readonly reader: TopicReader } {
  const state = { topic: '', reader: undefined as TopicReader | undefined };
  hooks.beforeEach(async () => {
    state.topic = uniqueName('tasks');
    await createTopics([state.topic]);
    state.reader = await new TopicReader([state.topic]).start();
  });
  hooks.afterEach(async () => {
    await hooks.killAll();
    await state.reader?.stop();
    await deleteTopics([state.topic]);
  });
  return {
    get topic() {
      return state.topic;
    },
    get reader() {
      if (!state.reader) throw new Error('useTaskTopic: read the reader inside a test');
      return state.reader;
    },
  };
}
