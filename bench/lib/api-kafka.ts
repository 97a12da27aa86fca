/**
 * The Kafka side of the API benchmark: task definitions written straight into taskmanager.tasks (as an operator's
 * producer would), and the two plain kafkajs baselines: an idempotent producer sending one definition-sized record
 * at a time, and a consumer reading the tasks topic to its end.
 */
import { Partitioners } from 'kafkajs';
import type { Kafka, Message } from 'kafkajs';
import { encodeJson } from '../../src/shared/messages.js';
import { TASKS_TOPIC } from '../../src/shared/tasks/definition.js';
import type { TaskDefinition, TaskSchedule } from '../../src/shared/tasks/definition.js';
import { produceAll, scanTopic } from './kafka-bench.js';
import type { ProduceStats } from './kafka-bench.js';
import { createTopicsReady } from '../../test/kit/kafka.js';

/** Seeded tasks run processors `proc-0` … `proc-9` in turn; every tenth is disabled (status PAUSED). */
export const SEED_PROCESSORS = 10;
export const PAUSED_EVERY = 10;

export const seedId = (i: number): string => `seed-${String(i).padStart(7, '0')}`;

/**
 * Seeded task i: a third each of cron, every and runAt schedules; createdAt one ms apart in i's order, so list
 * pages follow i. Valid for every reader (parseDefinition), fired by no one (group `group` runs no scheduler).
 */
export function seedDefinition(i: number, baseMs: number, topic: string, group: string): TaskDefinition {
  const at = new Date(baseMs + i).toISOString();
  const schedules: TaskSchedule[] = [
    { cron: `${i % 60} ${Math.floor(i / 60) % 60} * * * *` },
    { every: `${1 + (i % 59)}m` },
    { runAt: new Date(baseMs + 86_400_000 + i * 1000).toISOString() },
  ];
  return {
    v: 1,
    id: seedId(i),
    name: `seeded task ${i}`,
    processor: `proc-${i % SEED_PROCESSORS}`,
    topic,
    param: `param-${i}`,
    schedule: schedules[i % 3]!,
    timeZone: 'UTC',
    misfire: 'fire-once',
    enabled: i % PAUSED_EVERY !== PAUSED_EVERY - 1,
    group,
    createdAt: at,
    updatedAt: at,
  };
}

/** Writes `n` seeded definitions to taskmanager.tasks: a plain producer, 2,000 records a request, 4 in flight. */
export function seedTasks(kafka: Kafka, n: number, topic: string, group: string): Promise<ProduceStats> {
  const baseMs = Date.now() - n - 60_000;
  return produceAll(kafka, TASKS_TOPIC, n, (i) => ({
    key: seedId(i),
    value: encodeJson(seedDefinition(i, baseMs, topic, group)),
  }));
}

/** A compacted topic with as many partitions as `like`, for the producer baseline's records. */
export async function createCompactedTopic(kafka: Kafka, topic: string, like: string): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  let partitions = 1;
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [like] });
    partitions = topics[0]?.partitions.length ?? 1;
  } finally {
    await admin.disconnect();
  }
  await createTopicsReady(kafka, [
    { topic, numPartitions: partitions, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
  ]);
}

/**
 * The create baseline: an idempotent kafkajs producer (acks=-1, the settings taskapi's producer has) sends
 * `record(i)` one at a time; returns each send-to-ack time of the last `n` (the first `warmup` are not counted).
 */
export async function rawSendLatencies(
  kafka: Kafka,
  topic: string,
  n: number,
  warmup: number,
  record: (i: number) => Message,
): Promise<number[]> {
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    maxInFlightRequests: 5,
    retry: { initialRetryTime: 10, retries: 3, maxRetryTime: 1000 },
  });
  await producer.connect();
  const ms: number[] = [];
  try {
    for (let i = 0; i < warmup + n; i++) {
      const t0 = performance.now();
      await producer.send({ topic, acks: -1, messages: [record(i)] });
      if (i >= warmup) ms.push(performance.now() - t0);
    }
  } finally {
    await producer.disconnect();
  }
  return ms;
}

/** Records in a topic now (end minus start offsets, summed over partitions). */
export async function recordCount(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
  } finally {
    await admin.disconnect();
  }
}

/**
 * The rebuild baseline: a new kafkajs client reads taskmanager.tasks (read_committed, a throw-away group, as
 * taskapi's follower does) to its end, JSON-parsing each value. Timed from the client's creation to the last of
 * the `expected` records parsed; the group's deletion afterwards is not counted.
 */
export async function rawReadMs(makeKafka: () => Kafka, expected: number): Promise<number> {
  const t0 = performance.now();
  let count = 0;
  let lastAt = NaN;
  await scanTopic(makeKafka(), TASKS_TOPIC, (value) => {
    if ((JSON.parse(value.toString('utf8')) as { v?: number }).v === 1 && ++count === expected)
      lastAt = performance.now();
  });
  if (count !== expected) throw new Error(`raw consumer read ${count} definitions of ${expected}`);
  return lastAt - t0;
}
