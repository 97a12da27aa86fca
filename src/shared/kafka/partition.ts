import { randomInt } from 'node:crypto';
import type { ICustomPartitioner, PartitionerArgs } from 'kafkajs';

/** Mixing constants of the Java client's murmur2 (`Utils.murmur2`). */
const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Where a key short enough is encoded, instead of a Buffer per key. */
const scratch = Buffer.allocUnsafe(1024);

/**
 * The Java client's murmur2 of `key` (its UTF-8 bytes), as a signed 32-bit int: the same value as kafkajs's
 * DefaultPartitioner computes with 64-bit Long arithmetic, whose low 32 bits are all it keeps, here in 32-bit
 * integer steps without a Long nor a Buffer per key.
 */
export function murmur2(key: string | Buffer): number {
  let data: Uint8Array;
  let length: number;
  if (typeof key !== 'string') {
    data = key;
    length = key.length;
  } else if (key.length * 3 <= scratch.length) {
    data = scratch;
    length = scratch.write(key, 0, 'utf8');
  } else {
    data = Buffer.from(key, 'utf8');
    length = data.length;
  }
  let h = SEED ^ length;
  const length4 = length & ~3;
  for (let i = 0; i < length4; i += 4) {
    let k =
      (data[i] as number) |
      ((data[i + 1] as number) << 8) |
      ((data[i + 2] as number) << 16) |
      ((data[i + 3] as number) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= (data[length4 + 2] as number) << 16;
  if (rest >= 2) h ^= (data[length4 + 1] as number) << 8;
  if (rest >= 1) h = Math.imul(h ^ (data[length4] as number), M);
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * The partition the producer's partitioner (the Java client's murmur2, positive hash modulo the partition count)
 * puts `key` on: ownership and where state records land always agree.
 */
export function partitionForKey(key: string | Buffer, partitionCount: number): number {
  return (murmur2(key) & 0x7fffffff) % partitionCount;
}

/**
 * The producers' partitioner: what kafkajs's `Partitioners.DefaultPartitioner` (the Java client's) does, without its
 * per-record list of available partitions and its Long arithmetic (a sixth of a consumer's CPU writing one event per
 * task). An explicit partition is kept; a key goes to {@link partitionForKey} of all the topic's partitions; a
 * record without either goes round-robin over the partitions with a leader, from a random start per topic.
 */
export const javaCompatiblePartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>();
  return ({ topic, partitionMetadata, message }: PartitionerArgs): number => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const n = partitionMetadata.length;
    if (message.key !== null && message.key !== undefined) return partitionForKey(message.key, n);
    const next = ((counters.get(topic) ?? randomInt(2 ** 31)) + 1) & 0x7fffffff;
    counters.set(topic, next);
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    if (available.length > 0)
      return (available[next % available.length] as { partitionId: number }).partitionId;
    return next % n;
  };
};
