import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import type { IHeaders } from 'kafkajs';
import { createTaskTopics, deleteTopics as deleteKitTopics } from '../../kit/kafka.js';
import { TopicReader as KitReader } from '../../kit/topic-reader.js';
import type { TopicSpec } from '../../kit/topic-reader.js';

export type { ReadRecord } from '../../kit/topic-reader.js';

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
export function createTopics(names: string[], partitions = 12): Promise<void> {
  return createTaskTopics(kafka(), names, partitions);
}

/** Deletes task topics (with their DLQs) a test made. */
export function deleteTopics(names: string[]): Promise<void> {
  return deleteKitTopics(kafka(), names);
}

/** Writes the records (idempotently, acks=all) to the tests' broker, or to the cluster of `client`. */
export async function produce(
  topic: string,
  messages: Array<{
    key?: string | null;
    value: string | Buffer | null;
    headers?: IHeaders;
    partition?: number;
  }>,
  client: () => Kafka = kafka,
): Promise<void> {
  // Idempotent: a send retried after an error the broker recovered from (a partition not led yet) must not write
  // its records twice; a test then saw tasks "run twice" that it had itself published twice.
  const producer = client().producer({
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

/** The kit's reader ({@link KitReader}) of the tests' broker unless told another cluster. */
export class TopicReader extends KitReader {
  constructor(topics: Array<string | TopicSpec>, client: () => Kafka = kafka) {
    super(client, topics);
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
