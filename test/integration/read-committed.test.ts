import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KafkaClient } from '../../src/shared/kafka/client.js';
import { silentLogger } from '../../src/shared/logger.js';
import { brokers, createTopics, deleteTopics, kafka, uniqueName } from './helpers/kafka.js';
import { waitFor } from '../kit/wait.js';

/** A transactional producer of its own id, fenced in (its first transaction sends InitProducerId). */
async function transactional(id: string) {
  const producer = kafka().producer({ transactionalId: id, maxInFlightRequests: 1, idempotent: true });
  await producer.connect();
  return producer;
}

describe('reading a topic read_committed', () => {
  let topic: string;

  beforeEach(async () => {
    topic = uniqueName('read-committed');
    await createTopics([topic], 1);
  });

  afterEach(async () => {
    await deleteTopics([topic]);
  });

  describe('when two producers’ aborted transactions overlap and the later-started one ends first', () => {
    it('should hand over none of their records, only the committed one', async () => {
      const a = await transactional(`${topic}-a`);
      const b = await transactional(`${topic}-b`);
      const c = await transactional(`${topic}-c`);
      try {
        const txA = await a.transaction();
        const txB = await b.transaction();
        await txA.send({ topic, acks: -1, messages: [{ key: 'k', value: 'aborted by a' }] });
        await txB.send({ topic, acks: -1, messages: [{ key: 'k', value: 'aborted by b' }] });
        // The broker lists aborted transactions in the order they ended: b (first offset 1) before a (0).
        await txB.abort();
        await txA.abort();
        const txC = await c.transaction();
        await txC.send({ topic, acks: -1, messages: [{ key: 'k', value: 'committed by c' }] });
        await txC.commit();
      } finally {
        await Promise.all([a, b, c].map((p) => p.disconnect()));
      }
      const client = new KafkaClient({ brokers: [brokers()], logger: silentLogger });
      // A commit returns once the coordinator decided it; its markers (and so the last stable offset that a read
      // to the end stops at) follow a moment later: read again until c's record is there, then look at all of it.
      let seen: string[] = [];
      const read = await waitFor(
        async () => {
          seen = (await client.readToEnd(topic)).map((r) => r.value?.toString() ?? '');
          return seen.includes('committed by c') ? seen : undefined;
        },
        { timeoutMs: 30_000, what: () => `c's committed record read (saw ${JSON.stringify(seen)})` },
      );
      expect(read).toEqual(['committed by c']);
    });
  });
});
