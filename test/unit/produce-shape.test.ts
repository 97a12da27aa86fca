import { createRequire } from 'node:module';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { byTopic } from '../../src/shared/kafka/client.js';
import type { OutRecord } from '../../src/shared/kafka/index.js';

const require = createRequire(import.meta.url);
type Encoded = { encode(): Promise<{ buffer: Buffer }> };
const produceV3 = require('kafkajs/src/protocol/requests/produce/v3/request.js') as (r: object) => Encoded;

/** kafkajs's Produce v3 request for these messages, all on partition 0, encoded. */
async function encoded(topic: string, messages: object[]): Promise<Buffer> {
  const request = produceV3({
    acks: -1,
    timeout: 30000,
    compression: 0,
    topicData: [{ topic, partitions: [{ partition: 0, firstSequence: 0, messages }] }],
  });
  return (await request.encode()).buffer;
}

describe('the messages the Kafka door hands to kafkajs', () => {
  afterEach(() => vi.useRealTimers());

  it('should all have one shape, which already holds the fields the produce request sets', () => {
    const records: OutRecord[] = [
      { topic: 't', key: 'a', value: 'v' },
      { topic: 't', key: null, value: Buffer.from('b'), partition: 3, headers: { h: 'x' } },
    ];
    const [{ messages }] = byTopic(records, [undefined, 3]) as unknown as [{ messages: object[] }];
    expect(messages.map((m) => Object.keys(m))).toEqual([
      ['key', 'value', 'headers', 'partition', 'offsetDelta', 'timestampDelta'],
      ['key', 'value', 'headers', 'partition', 'offsetDelta', 'timestampDelta'],
    ]);
  });

  it('should encode to the bytes the bare messages give (the fields it adds are kafkajs’s to set)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.parse('2026-12-08T02:00:00Z'));
    const records: OutRecord[] = Array.from({ length: 50 }, (_, i) => ({
      topic: 't',
      key: i % 7 === 0 ? null : `k${i}`,
      value: i % 5 === 0 ? Buffer.from(`é${i}`) : `v${i}`,
      ...(i % 3 === 0 ? { headers: { 'task-id': `t${i}`, other: 'x' } } : {}),
      ...(i % 2 === 0 ? { partition: 0 } : {}),
    }));
    const [{ messages }] = byTopic(
      records,
      records.map((r) => r.partition),
    ) as unknown as [{ messages: object[] }];
    const bare = records.map((r) => ({
      key: r.key,
      value: r.value,
      ...(r.headers ? { headers: r.headers } : {}),
      ...(r.partition === undefined ? {} : { partition: r.partition }),
    }));
    expect((await encoded('t', messages)).equals(await encoded('t', bare))).toBe(true);
  });
});
