import { Partitioners } from 'kafkajs';
import type { PartitionMetadata } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { murmur2, partitionForKey } from '../../src/shared/kafka/partition.js';
import { seededRandom } from '../kit/random.js';

/** kafkajs's own DefaultPartitioner (the Java client's), through its public API. */
function kafkajsPartition(key: string | Buffer, count: number): number {
  const partitionMetadata: PartitionMetadata[] = Array.from({ length: count }, (_, i) => ({
    partitionId: i,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
    offlineReplicas: [],
  }));
  return Partitioners.DefaultPartitioner()({ topic: 't', partitionMetadata, message: { key, value: null } });
}

describe('partitionForKey', () => {
  it("should give the Java client's murmur2 for Kafka's own test vectors", () => {
    // org.apache.kafka.common.utils.UtilsTest#testMurmur2
    expect(murmur2('21')).toBe(-973932308);
    expect(murmur2('foobar')).toBe(-790332482);
    expect(murmur2('a-little-bit-long-string')).toBe(-985981536);
    expect(murmur2('a-little-bit-longer-string')).toBe(-1486304829);
    expect(murmur2('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8')).toBe(-58897971);
    expect(murmur2(Buffer.from('abc'))).toBe(479470107);
  });

  it("should put every key where kafkajs's DefaultPartitioner puts it: ASCII, UTF-8, lone surrogates, Buffers", () => {
    const next = seededRandom(22);
    const alphabets = [
      'abcdefghijklmnopqrstuvwxyz0123456789-/_.',
      'aÜéßñ€中文🙂/-',
      '\u0000\u007f\u0080\u07ff\u0800\uffff\ud800\udc00\udfffa',
    ];
    const keys: Array<string | Buffer> = ['', 'a', 'g/7', 'taskscheduler-x/Ünïcode'];
    for (const alphabet of alphabets)
      for (let n = 0; n < 400; n++) {
        const length = Math.floor(next() * 70);
        let key = '';
        for (let i = 0; i < length; i++) key += alphabet[Math.floor(next() * alphabet.length)];
        keys.push(key);
      }
    for (let n = 0; n < 200; n++)
      keys.push(Buffer.from(Array.from({ length: Math.floor(next() * 40) }, () => Math.floor(next() * 256))));
    for (const key of keys)
      for (const count of [1, 3, 12, 50, 1000])
        expect([key, count, partitionForKey(key, count)]).toEqual([key, count, kafkajsPartition(key, count)]);
  });
});
