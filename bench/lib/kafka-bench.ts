/**
 * Kafka plumbing the consumer benchmarks share: task records in our message format, pre-filling a topic, and the
 * plain kafkajs producer and consumer they are compared with (topics and groups: test/kit/kafka.ts). Benchmarks measure peers, so this file
 * talks to kafkajs directly (the "one door to Kafka" rule is for src/).
 */
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import type { Consumer, Message, Producer } from 'kafkajs';
import { taskMessageOf, taskRecord as taskOutRecord } from '../../src/shared/codecs/task-message.js';
import { PLAINTEXT } from '../../src/shared/kafka/security.js';
import type { KafkaConnection } from '../../src/shared/kafka/security.js';
// Importing the kit also keeps aborted transactions' records from the readers here (see test/kit/kafka.ts).
import { deleteGroups } from '../../test/kit/kafka.js';
import { within } from '../../test/kit/wait.js';

/** A kafkajs client with its logging off, for the peers and the plumbing. */
export function rawKafka(
  brokers: string[],
  clientId: string,
  connection: KafkaConnection = PLAINTEXT,
): Kafka {
  return new Kafka({
    brokers,
    clientId,
    logLevel: logLevel.NOTHING,
    ...(connection.ssl ? { ssl: connection.ssl } : {}),
    ...(connection.sasl ? { sasl: connection.sasl } : {}),
  });
}

/**
 * A task message as the scheduler publishes it (docs/messages-and-topics.md#task-message), with its key and
 * headers.
 */
export function taskRecord(scheduleId: string, scheduledMs: number, processor: string): Message {
  const task = taskMessageOf({ scheduleId, processor, param: 'bench' }, scheduledMs, scheduledMs, {
    group: 'bench',
    host: 'bench',
    pid: process.pid,
  });
  const { key, value, headers } = taskOutRecord('', task);
  return { key, value, headers };
}

export interface ProduceStats {
  records: number;
  ms: number;
  /** Per produce request: time from send to ack. */
  requestMs: number[];
}

/**
 * Sends `n` records made by `make(i)` with a plain kafkajs producer (acks=all, the Java client's partitioner),
 * `batch` records per request and up to `inFlight` requests at once.
 */
export async function produceAll(
  kafka: Kafka,
  topic: string,
  n: number,
  make: (i: number) => Message,
  { batch = 2000, inFlight = 4 }: { batch?: number; inFlight?: number } = {},
): Promise<ProduceStats> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const requestMs: number[] = [];
  let next = 0;
  const t0 = performance.now();
  try {
    const lane = async (): Promise<void> => {
      while (next < n) {
        const from = next;
        next = Math.min(n, next + batch);
        const messages: Message[] = [];
        for (let i = from; i < next; i++) messages.push(make(i));
        const s = performance.now();
        await producer.send({ topic, acks: -1, messages });
        requestMs.push(performance.now() - s);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, lane));
  } finally {
    await producer.disconnect();
  }
  return { records: n, ms: performance.now() - t0, requestMs };
}

/**
 * Record `i` of `n` valid task messages: `keys` schedules, each firing once per second, in time order (second 0 for
 * every schedule, then second 1, …, the last second just past), as a scheduler with `keys` entries `* * * * * *`
 * would publish them.
 */
export function prefillRecords(n: number, keys: number, processor: string): (i: number) => Message {
  const base = Math.floor(Date.now() / 1000) * 1000 - Math.ceil(n / keys) * 1000;
  return (i) => taskRecord(`bench-${i % keys}`, base + Math.floor(i / keys) * 1000, processor);
}

/** Pre-fills `topic` with the `n` task messages of {@link prefillRecords}. */
export function prefillTasks(
  kafka: Kafka,
  topic: string,
  n: number,
  keys: number,
  processor: string,
): Promise<ProduceStats> {
  return produceAll(kafka, topic, n, prefillRecords(n, keys, processor));
}

export interface ConsumeStats {
  records: number;
  /** From `run()` to the group joined. */
  joinMs: number;
  /** From the first record in hand to the last one committed-ready. */
  ms: number;
  /** From `run()` to the last one. */
  totalMs: number;
}

/**
 * A plain at-least-once kafkajs consumer, as one would write it: a new group reading from the beginning, each
 * batch JSON-parsed record by record with the offset resolved after each, committed by kafkajs after each batch.
 * Fetch settings are those of our GroupConsumer, so only what runs per record differs. Resolves once `n` records
 * were parsed.
 */
export async function rawConsume(
  kafka: Kafka,
  topic: string,
  groupId: string,
  n: number,
  partitionsConsumedConcurrently: number,
): Promise<ConsumeStats> {
  const consumer = rawConsumer(kafka, groupId);
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const t0 = performance.now();
  let joinedAt = t0;
  let firstAt = 0;
  let count = 0;
  let parsed = 0;
  let finish: (at: number) => void = () => undefined;
  const done = new Promise<number>((r) => (finish = r));
  consumer.on(consumer.events.GROUP_JOIN, () => (joinedAt = performance.now()));
  await consumer.run({
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      if (firstAt === 0) firstAt = performance.now();
      for (const m of batch.messages) {
        if (!isRunning() || isStale()) break;
        if (m.value) parsed += (JSON.parse(m.value.toString('utf8')) as { v?: number }).v ?? 0;
        resolveOffset(m.offset);
        if (++count === n) finish(performance.now());
      }
      await heartbeat();
    },
  });
  const lastAt = await done;
  await consumer.disconnect();
  if (parsed !== n) throw new Error(`raw consumer parsed ${parsed} task messages of ${n}`);
  return { records: count, joinMs: joinedAt - t0, ms: lastAt - firstAt, totalMs: lastAt - t0 };
}

/**
 * Reads a topic (read_committed, a throw-away group) from the beginning to the end offsets it has when called,
 * handing each record value to `onValue`. Transaction markers count towards the end (they never reach eachBatch).
 */
export async function scanTopic(
  kafka: Kafka,
  topic: string,
  onValue: (value: Buffer) => void,
  timeoutMs = 300_000,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
  const remaining = new Map<number, number>();
  for (const o of ends) if (Number(o.high) > Number(o.low)) remaining.set(o.partition, Number(o.high));
  if (remaining.size === 0) return;
  const groupId = `bench-scan-${topic}-${Date.now()}`;
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, readUncommitted: false });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let finish: () => void = () => undefined;
    const done = new Promise<void>((r) => (finish = r));
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
      const end = remaining.get(e.payload.partition);
      if (end !== undefined && Number(e.payload.lastOffset) + 1 >= end) remaining.delete(e.payload.partition);
      if (remaining.size === 0) finish();
    });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const end = remaining.get(batch.partition);
        if (end === undefined) return;
        for (const m of batch.messages) if (m.value && Number(m.offset) < end) onValue(m.value);
      },
    });
    await within(done, timeoutMs, () => `reading ${topic} did not reach its end`);
  } finally {
    await consumer.disconnect();
    await deleteGroups(kafka, [groupId]);
  }
}

/** A plain kafkajs consumer with our GroupConsumer's fetch and session settings. */
function rawConsumer(kafka: Kafka, groupId: string): Consumer {
  return kafka.consumer({
    groupId,
    sessionTimeout: 6000,
    heartbeatInterval: 1000,
    readUncommitted: false,
    maxBytesPerPartition: 1024 * 1024,
    maxWaitTimeInMs: 100,
  });
}

/** A plain kafkajs producer (the Java client's partitioner), connected. */
export async function rawProducer(kafka: Kafka): Promise<Producer> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  return producer;
}

/**
 * A plain kafkajs consumer in a new group, with our GroupConsumer's fetch settings, calling `onValue` with each
 * record value and `Date.now()` as it gets it. `joined` resolves once the group gave it its partitions.
 */
export async function startRawConsumer(
  kafka: Kafka,
  topic: string,
  groupId: string,
  onValue: (value: Buffer, atMs: number) => void,
): Promise<{ joined: Promise<void>; stop(): Promise<void> }> {
  const consumer = rawConsumer(kafka, groupId);
  let onJoin: () => void = () => undefined;
  const joined = new Promise<void>((r) => (onJoin = r));
  consumer.on(consumer.events.GROUP_JOIN, () => onJoin());
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      if (message.value) onValue(message.value, Date.now());
    },
  });
  return { joined, stop: () => consumer.disconnect() };
}
