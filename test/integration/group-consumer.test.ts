import { afterEach, describe, expect, it } from 'vitest';
import { KafkaClient } from '../../src/shared/kafka/index.js';
import type { GroupConsumer } from '../../src/shared/kafka/index.js';
import { silentLogger } from '../../src/shared/logger.js';
import { brokers, createTopics, deleteTopics, produce, uniqueName } from './helpers/kafka.js';
import { waitFor } from '../kit/wait.js';

describe('a consumer-group member (GroupConsumer)', () => {
  const topic = uniqueName('member');
  let consumer: GroupConsumer | undefined;

  afterEach(async () => {
    await consumer?.disconnect();
    await deleteTopics([topic]);
  });

  describe('when kafkajs stops it after a non-retriable error', () => {
    it('should run again by itself, keeping the partitions its owner paused', async () => {
      await createTopics([topic], 2);
      const kafka = new KafkaClient({ brokers: [brokers()], logger: silentLogger });
      const member = kafka.consumer({ groupId: uniqueName('group') });
      consumer = member;
      const seen: string[] = [];
      let crashes = 0;
      member.onCrash(() => crashes++);
      let thrown = false;
      await member.connect();
      await member.subscribe([topic], true);
      await member.run({
        partitionsConsumedConcurrently: 1,
        autoCommit: false,
        eachBatch: async (b) => {
          // What kafkajs does not restart after: an error marked not retriable (as ILLEGAL_GENERATION is).
          if (!thrown && b.records.some((r) => r.value?.toString() === 'poison')) {
            thrown = true;
            throw Object.assign(new Error('not retriable'), { retriable: false });
          }
          for (const r of b.records) seen.push(`${r.partition}:${r.value?.toString() ?? ''}`);
          b.resolveOffset(b.lastOffset());
        },
      });
      await waitFor(() => member.health().joined, { timeoutMs: 30_000, what: 'joined' });
      member.pause(topic, [1]);
      await produce(topic, [
        { value: 'held', partition: 1 },
        { value: 'poison', partition: 0 },
      ]);
      await waitFor(() => seen.includes('0:poison'), {
        timeoutMs: 30_000,
        what: 'the record of partition 0, read again once the member ran again',
      });
      expect(crashes).toBe(1);
      await waitFor(() => member.health().joined, { timeoutMs: 30_000, what: 'in the group again' });
      // Partition 1 stayed paused across the restart: nothing read from it until it is resumed.
      expect(seen).not.toContain('1:held');
      member.resume(topic, [1]);
      await waitFor(() => seen.includes('1:held'), { timeoutMs: 30_000, what: 'the resumed partition' });
    });
  });
});
