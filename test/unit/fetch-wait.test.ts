import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { useKafkajsInternals, waitForBatches } from '../../src/shared/kafka/kafkajs/index.js';

interface Asked {
  nodeId: number;
  maxWaitTime: number;
  minBytes: number;
}

/**
 * A kafkajs ConsumerGroup (its real prototype, so its real `fetch` runs) on one partition of topic `t`, whose
 * broker answers each fetch with the next of `answers` (how many records) and notes what it was asked.
 */
function groupOf(groupId: string, answers: number[], asked: Asked[]) {
  useKafkajsInternals();
  const require = createRequire(import.meta.url);
  const Group = require('kafkajs/src/consumer/consumerGroup.js') as {
    prototype: { fetch(nodeId: number): Promise<Array<{ messages: unknown[] }>> };
  };
  let offset = 0;
  const broker = (nodeId: number) => ({
    fetch: ({ maxWaitTime, minBytes }: { maxWaitTime: number; minBytes: number }) => {
      asked.push({ nodeId, maxWaitTime, minBytes });
      const n = answers.shift() ?? 0;
      const messages = Array.from({ length: n }, () => ({
        offset: String(offset++),
        key: null,
        value: null,
      }));
      return Promise.resolve({
        responses: [
          { topicName: 't', partitions: [{ partition: 0, highWatermark: String(offset), messages }] },
        ],
      });
    },
  });
  return Object.assign(Object.create(Group.prototype) as typeof Group.prototype, {
    groupId,
    maxWaitTime: 50,
    minBytes: 1,
    maxBytes: 1 << 20,
    maxBytesPerPartition: 1 << 20,
    seekOffset: { has: () => false },
    preferredReadReplicasPerTopicPartition: {},
    subscriptionState: { assigned: () => [{ topic: 't', partitions: [0] }], isPaused: () => false },
    offsetManager: { committedOffsets: () => ({ t: { 0: '0' } }), nextOffset: () => String(offset) },
    cluster: {
      refreshMetadataIfNecessary: () => Promise.resolve(),
      findBroker: ({ nodeId }: { nodeId: number }) => Promise.resolve(broker(nodeId)),
    },
    checkForStaleAssignment: () => undefined,
    filterPartitionsByNode: (_n: number, tps: unknown) => tps,
    seekOffsets: () => Promise.resolve(),
    getActiveTopicPartitions: () => ({ t: new Set([0]) }),
  });
}

describe('fetch waits of a batching follower (kafkajs/fetch-wait.ts)', () => {
  it('should batch while records come, and wait for the first record once a fetch came back empty', async () => {
    const asked: Asked[] = [];
    const group = groupOf('follower-a', [3, 0, 0, 1, 2, 0], asked);
    const stop = waitForBatches('follower-a', { maxWaitMs: 50, minBytes: 65536, idleMaxWaitMs: 1000 });
    const got: number[] = [];
    for (let i = 0; i < 6; i++) got.push((await group.fetch(1)).reduce((n, b) => n + b.messages.length, 0));
    expect(got).toEqual([3, 0, 0, 1, 2, 0]);
    expect(asked.map((a) => [a.maxWaitTime, a.minBytes])).toEqual([
      [50, 65536], // records came: the next batches
      [50, 65536], // empty: the next waits for the first record
      [1000, 1],
      [1000, 1], // a record came: batching again
      [50, 65536],
      [50, 65536],
    ]);
    stop();
    await group.fetch(1);
    expect(asked.at(-1)).toMatchObject({ maxWaitTime: 50, minBytes: 65536 }); // no longer switched
  });

  it('should keep each broker’s state apart, and leave unregistered groups as kafkajs made them', async () => {
    const asked: Asked[] = [];
    const group = groupOf('follower-b', [0, 5, 0], asked);
    const stop = waitForBatches('follower-b', { maxWaitMs: 50, minBytes: 65536, idleMaxWaitMs: 1000 });
    await group.fetch(1); // empty from broker 1
    await group.fetch(2); // broker 2 has not answered empty: it batches
    await group.fetch(1);
    expect(asked.map((a) => [a.nodeId, a.maxWaitTime, a.minBytes])).toEqual([
      [1, 50, 65536],
      [2, 50, 65536],
      [1, 1000, 1],
    ]);
    stop();
    const other: Asked[] = [];
    const plain = groupOf('not-registered', [0, 0], other);
    await plain.fetch(1);
    await plain.fetch(1);
    expect(other.map((a) => [a.maxWaitTime, a.minBytes])).toEqual([
      [50, 1],
      [50, 1],
    ]);
  });
});
