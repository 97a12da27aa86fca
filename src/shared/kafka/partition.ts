const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Where an ASCII key's bytes are copied to be hashed (grown as needed). */
let scratch = new Uint8Array(256);

/**
 * The Java client's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`) of the UTF-8 bytes of `key`, as a signed
 * 32-bit integer: kafkajs's DefaultPartitioner computes the same with 64-bit Long objects, ten times slower, and a
 * scheduler hashes every record of `taskmanager.tasks` it reads (test/unit/partition.test.ts checks both agree).
 */
export function murmur2(key: string | Buffer): number {
  if (typeof key !== 'string') return murmur2Bytes(key, key.length);
  // An ASCII key (a task id, `<group>/<id>`) is its own UTF-8: copied as it is, not encoded into a new Buffer.
  if (key.length > scratch.length) scratch = new Uint8Array(key.length * 2);
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c > 0x7f) {
      const utf8 = Buffer.from(key);
      return murmur2Bytes(utf8, utf8.length);
    }
    scratch[i] = c;
  }
  return murmur2Bytes(scratch, key.length);
}

/** murmur2 of the first `length` bytes of `data`. */
function murmur2Bytes(data: Uint8Array, length: number): number {
  let h = (SEED ^ length) | 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= data[whole + 2]! << 16;
  if (rest >= 2) h ^= data[whole + 1]! << 8;
  if (rest >= 1) h = Math.imul(h ^ data[whole]!, M);
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * The partition the Java client's default partitioner (and kafkajs's DefaultPartitioner) puts `key` on: murmur2 of
 * its UTF-8 bytes made positive (`& 0x7fffffff`), modulo the partition count. Our producer places keyed records
 * with it too, so ownership and where state records land always agree.
 */
export function partitionForKey(key: string | Buffer, partitionCount: number): number {
  return (murmur2(key) & 0x7fffffff) % partitionCount;
}
