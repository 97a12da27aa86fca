import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { fixQuadraticGrouping, PartitionedMessages } from '../../src/shared/kafka/kafkajs/grouping-fix.js';

const require = createRequire(import.meta.url);
type Message = { key: string; value: string; partition?: number };
const groupMessagesPerPartition = require('kafkajs/src/producer/groupMessagesPerPartition.js') as (o: {
  topic: string;
  partitionMetadata: Array<{ partitionId: number }>;
  messages: Message[];
  partitioner: (o: { message: Message }) => number;
}) => Record<string, Message[]>;

const partitionMetadata = Array.from({ length: 12 }, (_, partitionId) => ({ partitionId }));
/** A partitioner like the Java one as far as grouping goes: explicit partitions kept, keys hashed. */
const partitioner = ({ message }: { message: Message }): number =>
  message.partition ?? [...message.key].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 12, 7);

function messagesOf(n: number): Message[] {
  return Array.from({ length: n }, (_, i) => ({
    key: `k${i % 97}-${i}`,
    value: `v${i}`,
    ...(i % 3 === 0 ? { partition: 5 } : {}),
  }));
}

describe('grouping a produce call’s messages by partition (kafkajs adapter)', () => {
  it('should give what kafkajs’s own grouping gives: the same lists, in the same order, linearly', () => {
    expect(fixQuadraticGrouping()).toBe(true);
    for (const n of [0, 1, 2, 13, 1000, 5000]) {
      const plain = messagesOf(n);
      const want = groupMessagesPerPartition({ topic: 't', partitionMetadata, messages: plain, partitioner });
      const before = PartitionedMessages.linearGroupings;
      const fast = new PartitionedMessages<Message>();
      fast.push(...plain);
      const got = groupMessagesPerPartition({ topic: 't', partitionMetadata, messages: fast, partitioner });
      expect(got).toEqual(want);
      expect(Object.keys(got)).toEqual(Object.keys(want));
      for (const p of Object.keys(want)) expect(got[p]?.every((m, i) => m === want[p]?.[i])).toBe(true);
      expect(PartitionedMessages.linearGroupings).toBe(before + 1);
    }
  });

  it('should be an Array for everything else kafkajs and we do with it', () => {
    const list = new PartitionedMessages<number>();
    list.push(1, 2, 3);
    expect(list.reduce((a, b) => a + b, 0)).toBe(6);
    expect(list.reduce((a, b) => a + b)).toBe(6);
    expect(list.reduce((acc: Record<string, number>, v) => ({ ...acc, [v]: v }), {})).toEqual({
      1: 1,
      2: 2,
      3: 3,
    });
    expect([...list, ...[4]]).toEqual([1, 2, 3, 4]);
    expect(list.find((v) => v === 2)).toBe(2);
    expect(Array.isArray(list)).toBe(true);
  });

  it('should find the grouping it replaces in the kafkajs installed, and refuse another', () => {
    expect(fixQuadraticGrouping()).toBe(true);
    const path = require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js');
    const cached = require.cache[path] as { exports: unknown };
    const original = cached.exports;
    cached.exports = ({ messages }: { messages: Message[] }) =>
      messages.reduce((result: Record<string, Message[]>, message) => {
        (result[0] ??= []).push(message);
        return result;
      }, {});
    try {
      expect(fixQuadraticGrouping()).toBe(false);
    } finally {
      cached.exports = original;
      fixQuadraticGrouping();
    }
  });
});
