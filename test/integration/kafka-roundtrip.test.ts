import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTopics, deleteTopics, produce, TopicReader, uniqueName } from './helpers/kafka.js';
import { waitFor } from '../kit/wait.js';

describe('the local broker', () => {
  let topic: string;
  let reader: TopicReader | undefined;

  beforeEach(async () => {
    topic = uniqueName('roundtrip');
    await createTopics([topic], 3);
  });

  afterEach(async () => {
    await reader?.stop();
    await deleteTopics([topic]);
  });

  describe('when records are produced with kafkajs', () => {
    it('should deliver every one to a consumer group, keyed to a stable partition', async () => {
      await produce(
        topic,
        Array.from({ length: 100 }, (_, i) => ({ key: `k${i % 5}`, value: JSON.stringify({ i }) })),
      );
      reader = await new TopicReader([topic]).start();
      await waitFor(() => reader?.records.length === 100, { timeoutMs: 30_000, what: '100 records' });
      const values = reader.values<{ i: number }>(topic).map((v) => v.i);
      expect(values.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
      const partitionsOfKey = new Map<string, Set<number>>();
      for (const r of reader.records) {
        const s = partitionsOfKey.get(r.key ?? '') ?? new Set();
        s.add(r.partition);
        partitionsOfKey.set(r.key ?? '', s);
      }
      for (const s of partitionsOfKey.values()) expect(s.size).toBe(1);
    });
  });

  describe('when a reader starts from the end and only some partitions are written after', () => {
    it('should be caught up at once on the partitions written nothing more', async () => {
      await produce(
        topic,
        [0, 1, 2].map((partition) => ({ partition, value: '{}' })),
      );
      reader = await new TopicReader([{ topic, fromEnd: true }]).start();
      await produce(topic, [{ partition: 0, value: JSON.stringify({ after: true }) }]);
      await reader.caughtUp(topic, 10_000);
      expect(reader.values(topic)).toEqual([{ after: true }]);
    });
  });
});
