import { describe, expect, it } from 'vitest';
import type { Producer, ProducerBatch, RecordMetadata } from 'kafkajs';
import { BatchingSender, KafkaProducer, partitionForKey } from '../../src/shared/kafka/index.js';
import type { OutRecord } from '../../src/shared/kafka/index.js';

const PARTITIONS = 3;

/** A kafkajs producer that appends to per-partition logs and answers with each partition's base offset. */
class FakeBroker {
  readonly logs = new Map<string, Array<string | null>>();
  readonly requests: number[] = [];
  failNext = false;

  producer(): Producer {
    return {
      connect: () => Promise.resolve(),
      disconnect: () => Promise.resolve(),
      sendBatch: (batch: ProducerBatch): Promise<RecordMetadata[]> => this.sendBatch(batch),
    } as unknown as Producer;
  }

  private async sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]> {
    await new Promise((r) => setTimeout(r, 5));
    if (this.failNext) {
      this.failNext = false;
      throw new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
    }
    let count = 0;
    const answer = new Map<string, RecordMetadata>();
    for (const { topic, messages } of batch.topicMessages ?? [])
      for (const m of messages) {
        const k = `${topic}/${m.partition ?? partitionForKey(String(m.key), PARTITIONS)}`;
        const log = this.logs.get(k) ?? [];
        this.logs.set(k, log);
        if (!answer.has(k))
          answer.set(k, {
            topicName: topic,
            partition: Number(k.split('/')[1]),
            errorCode: 0,
            baseOffset: String(log.length),
          });
        log.push(m.key === null || m.key === undefined ? String(m.value) : String(m.key));
        count++;
      }
    this.requests.push(count);
    return [...answer.values()];
  }

  at(topic: string, p: { partition: number; offset: string }): string | null | undefined {
    return this.logs.get(`${topic}/${p.partition}`)?.[Number(p.offset)];
  }
}

const setUp = () => {
  const broker = new FakeBroker();
  const producer = new KafkaProducer(
    () => broker.producer(),
    async (topics) => new Map(topics.map((t) => [t, PARTITIONS])),
  );
  return { broker, sender: new BatchingSender(producer) };
};
const keyed = (key: string, value = key): OutRecord => ({ topic: 't', key, value });

describe('a BatchingSender placing records', () => {
  it('should send concurrent writes in shared requests and tell each caller where its record was written', async () => {
    const { broker, sender } = setUp();
    const keys = Array.from({ length: 200 }, (_, i) => `task-${i}`);
    const placed = await Promise.all(keys.map((k) => sender.place([keyed(k)])));
    expect(broker.requests.length).toBeLessThan(5);
    expect(broker.requests.reduce((a, b) => a + b, 0)).toBe(200);
    placed.forEach(([p], i) => {
      expect(p!.partition).toBe(partitionForKey(keys[i]!, PARTITIONS));
      expect(broker.at('t', p!)).toBe(keys[i]);
    });
  });

  it('should place a record without a key, and records of several callers and topics in one request', async () => {
    const { broker, sender } = setUp();
    const [a, b, c] = await Promise.all([
      sender.place([{ topic: 't', key: null, value: 'no-key' }]),
      sender.place([keyed('x'), { topic: 'u', key: 'y', value: 'y' }, keyed('x', 'again')]),
      sender.send([keyed('plain')]),
    ]);
    expect(broker.requests).toEqual([5]);
    expect(broker.at('t', a![0]!)).toBe('no-key');
    expect(b!.map((p, i) => broker.at(i === 1 ? 'u' : 't', p))).toEqual(['x', 'y', 'x']);
    expect(Number(b![2]!.offset)).toBe(Number(b![0]!.offset) + 1);
    expect(c).toBeUndefined();
  });

  it('should fail every caller of a failed request, and send the next ones', async () => {
    const { broker, sender } = setUp();
    broker.failNext = true;
    const first = await Promise.allSettled([sender.place([keyed('a')]), sender.place([keyed('b')])]);
    expect(first.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    const [p] = await sender.place([keyed('c')]);
    expect(broker.at('t', p!)).toBe('c');
  });

  it('should keep a request under 512 KiB', async () => {
    const { broker, sender } = setUp();
    const big = 'x'.repeat(300 * 1024);
    await Promise.all([
      sender.send([keyed('a', big)]),
      sender.send([keyed('b', big)]),
      sender.send([keyed('c')]),
    ]);
    expect(broker.requests).toEqual([1, 2]);
  });
});
