/**
 * Topic and group plumbing for tests and benchmarks: fresh topics that are readable when made, and clean-up. Tests
 * and benchmarks watch the programs from outside, so this talks to kafkajs directly (the "one door to Kafka" rule
 * is for src/).
 */
import type { ITopicConfig, Kafka } from 'kafkajs';
import { fixAbortedTransactionFilter } from '../../src/shared/kafka/kafkajs/fetch-fixes.js';
import { waitFor } from './wait.js';

// Readers of tests and benchmarks (all of which import this module) must not see aborted transactions' records:
// kafkajs 2.2.4 hands some over as committed (see fetch-fixes.ts). Producing is left as kafkajs does it.
fixAbortedTransactionFilter();

/**
 * Waits until every partition of the topics answers an offsets request (so each has a leader). Right after a
 * broker started or a topic was created, its partitions can briefly be unknown ("This server does not host this
 * topic-partition"), which kafkajs's `createTopics({ waitForLeaders })` does not wait out: it retries only "leader
 * not available". Tests and benchmarks call this after every topic they create.
 */
export async function whenReadable(kafka: Kafka, topics: string[], timeoutMs = 30_000): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (const topic of topics) {
      await waitFor(() => admin.fetchTopicOffsets(topic).then(() => true), {
        timeoutMs,
        intervalMs: 100,
        what: `a leader for every partition of ${topic}`,
      });
    }
  } finally {
    await admin.disconnect();
  }
}

/** Creates the topics and returns once every partition of each has a leader (see {@link whenReadable}). */
export async function createTopicsReady(kafka: Kafka, topics: ITopicConfig[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    // kafkajs's own wait gives up on "does not host this topic-partition": whenReadable waits instead.
    await admin.createTopics({ waitForLeaders: false, topics });
  } finally {
    await admin.disconnect();
  }
  await whenReadable(
    kafka,
    topics.map((t) => t.topic),
  );
}

/**
 * Creates task topics with their `.dlq` (where our consumer dead-letters), `partitions` partitions each. With
 * `fresh`, refuses a topic that exists already (a benchmark needs an empty one).
 */
export async function createTaskTopics(
  kafka: Kafka,
  topics: string[],
  partitions: number,
  { fresh = false }: { fresh?: boolean } = {},
): Promise<void> {
  if (fresh) {
    const admin = kafka.admin();
    await admin.connect();
    const existing = new Set(await admin.listTopics().finally(() => admin.disconnect()));
    const taken = topics.filter((t) => existing.has(t));
    if (taken.length > 0)
      throw new Error(`topic ${taken.join(', ')} already exists; benchmarks need a fresh one`);
  }
  await createTopicsReady(
    kafka,
    topics.flatMap((topic) => [
      { topic, numPartitions: partitions },
      { topic: `${topic}.dlq`, numPartitions: partitions },
    ]),
  );
}

/** Deletes the topics (and their `.dlq`) that exist; a failure is reported, not thrown (clean-up only). */
export async function deleteTopics(kafka: Kafka, topics: string[]): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    const doomed = topics.flatMap((t) => [t, `${t}.dlq`]).filter((t) => existing.has(t));
    if (doomed.length > 0) await admin.deleteTopics({ topics: doomed });
  } catch (err) {
    console.error(`could not delete topics ${topics.join(', ')}: ${String(err)}`);
  } finally {
    await admin.disconnect();
  }
}

/** Deletes consumer groups (clean-up only: a failure is reported, not thrown). */
export async function deleteGroups(kafka: Kafka, groups: string[]): Promise<void> {
  if (groups.length === 0) return;
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.deleteGroups(groups);
  } catch (err) {
    console.error(`could not delete groups ${groups.join(', ')}: ${String(err)}`);
  } finally {
    await admin.disconnect();
  }
}
