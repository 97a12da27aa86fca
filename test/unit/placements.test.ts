import type { Producer } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { KafkaProducer, partitionForKey } from '../../src/shared/kafka/index.js';
import { RecordsDroppedError } from '../../src/shared/kafka/client.js';
import type { OutRecord } from '../../src/shared/kafka/index.js';

type Sent = { topic: string; messages: Array<{ key: unknown; partition: number | undefined }> };

/** A kafkajs producer that answers for the partitions it was given, less those in `drop`. */
function fakeProducer(sent: Sent[][], drop: ReadonlySet<string> = new Set()): Producer {
  return {
    connect: () => Promise.resolve(),
    disconnect: () => Promise.resolve(),
    sendBatch: ({ topicMessages }: { topicMessages: Sent[] }) => {
      sent.push(topicMessages);
      const answer = new Map<string, { topicName: string; partition: number }>();
      for (const t of topicMessages)
        for (const m of t.messages) {
          const p = m.partition ?? 0;
          if (!drop.has(`${t.topic}/${p}`))
            answer.set(`${t.topic}/${p}`, { topicName: t.topic, partition: p });
        }
      return Promise.resolve([...answer.values()]);
    },
  } as unknown as Producer;
}

describe('where the Kafka door places each record', () => {
  const counts = new Map([
    ['tasks', 12],
    ['events', 6],
  ]);
  const forgotten: string[] = [];
  const countsOf = (topics: readonly string[], forget: readonly string[] = []) => {
    forgotten.push(...forget);
    return Promise.resolve(new Map(topics.map((t) => [t, counts.get(t) ?? 0])));
  };

  it('should keep a record’s own partition, hash a key by its topic’s count, and leave the rest to kafkajs', async () => {
    const sent: Sent[][] = [];
    const producer = new KafkaProducer(() => fakeProducer(sent), countsOf);
    const records: OutRecord[] = [
      { topic: 'tasks', key: 'schedule-a', value: '1' },
      { topic: 'tasks', key: 'schedule-ü', value: '2' },
      { topic: 'tasks', key: 'schedule-c', value: '3', partition: 11 },
      { topic: 'events', key: null, value: '4' },
      { topic: 'unknown', key: 'k', value: '5' },
    ];
    await producer.send(records);
    const placed = sent[0]?.flatMap((t) => t.messages.map((m) => [t.topic, m.partition]));
    expect(placed).toEqual([
      ['tasks', partitionForKey('schedule-a', 12)],
      ['tasks', partitionForKey('schedule-ü', 12)],
      ['tasks', 11],
      ['events', undefined],
      ['unknown', undefined],
    ]);
  });

  it('should leave a record of a topic it cannot look up to kafkajs, and check its answer after the send', async () => {
    // A broker with auto.create.topics.enable makes the topic as the send writes to it: its count exists after.
    const sent: Sent[][] = [];
    let lookups = 0;
    const createdBySend = (topics: readonly string[]) => {
      lookups++;
      if (sent.length === 0)
        return Promise.reject(new Error('This server does not host this topic-partition'));
      return Promise.resolve(new Map(topics.map((t) => [t, 1])));
    };
    const producer = new KafkaProducer(() => fakeProducer(sent), createdBySend);
    await producer.send([{ topic: 'new', key: 'k', value: '1' }]);
    expect(sent[0]?.[0]?.messages.map((m) => m.partition)).toEqual([undefined]);
    expect(lookups).toBe(2);
  });

  it('should fail a send whose answer lacks a partition it placed records on, and look that count up again', async () => {
    const sent: Sent[][] = [];
    const p = partitionForKey('schedule-a', 12);
    const producer = new KafkaProducer(() => fakeProducer(sent, new Set([`tasks/${p}`])), countsOf);
    forgotten.length = 0;
    await expect(producer.send([{ topic: 'tasks', key: 'schedule-a', value: '1' }])).rejects.toBeInstanceOf(
      RecordsDroppedError,
    );
    expect(forgotten).toEqual(['tasks']);
  });
});
