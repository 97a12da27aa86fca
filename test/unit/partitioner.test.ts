import { randomBytes } from 'node:crypto';
import { Partitioners } from 'kafkajs';
import type { PartitionMetadata } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { javaCompatiblePartitioner, partitionForKey } from '../../src/shared/kafka/partition.js';

const metadata = (n: number, leaderless: number[] = []): PartitionMetadata[] =>
  Array.from({ length: n }, (_, i) => ({
    partitionId: i,
    leader: leaderless.includes(i) ? -1 : 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
    offlineReplicas: [],
  }));

/** Keys of every length 0-40 and beyond, ASCII, multi-byte, taskIds, and long enough to miss the scratch buffer. */
function keys(): Array<string | Buffer> {
  const out: Array<string | Buffer> = [
    '',
    'a',
    'ab',
    'abc',
    'abcd',
    'é',
    '日本語',
    '🙂x',
    'x'.repeat(400),
    'é'.repeat(600),
  ];
  for (let len = 0; len < 41; len++) out.push(randomBytes(len).toString('base64').slice(0, len));
  for (let i = 0; i < 2000; i++)
    out.push(`sched-${i}@2026-11-25T08:00:${String(i % 60).padStart(2, '0')}.000Z`);
  for (let i = 0; i < 200; i++) out.push(randomBytes(i % 37));
  for (let i = 0; i < 200; i++)
    out.push(
      String.fromCodePoint(
        ...Array.from({ length: 1 + (i % 9) }, (_, j) => 0x20 + ((i * 977 + j * 131) % 0x2fff)),
      ),
    );
  return out;
}

describe('the producers’ partitioner', () => {
  it('should put every key on the partition kafkajs’s DefaultPartitioner (the Java client’s) picks', () => {
    const theirs = Partitioners.DefaultPartitioner();
    const ours = javaCompatiblePartitioner();
    for (const n of [1, 3, 6, 12, 50, 97]) {
      const partitionMetadata = metadata(n);
      for (const key of keys()) {
        const message = { key, value: null };
        const expected = theirs({ topic: 't', partitionMetadata, message });
        expect(ours({ topic: 't', partitionMetadata, message }), `${String(key)} of ${n}`).toBe(expected);
        expect(partitionForKey(key, n)).toBe(expected);
      }
    }
  });

  it('should keep an explicit partition, and spread records without key over the partitions with a leader', () => {
    const ours = javaCompatiblePartitioner();
    const partitionMetadata = metadata(4, [1]);
    expect(ours({ topic: 't', partitionMetadata, message: { key: 'k', value: null, partition: 1 } })).toBe(1);
    const seen = new Set<number>();
    for (let i = 0; i < 30; i++)
      seen.add(ours({ topic: 't', partitionMetadata, message: { key: null, value: null } }));
    expect([...seen].sort()).toEqual([0, 2, 3]);
  });
});
