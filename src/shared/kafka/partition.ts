import { Partitioners } from 'kafkajs';
import type { PartitionMetadata } from 'kafkajs';

const partitioner = Partitioners.DefaultPartitioner();
const metadataCache = new Map<number, PartitionMetadata[]>();

/**
 * The partition the producer's partitioner (the Java client's murmur2, positive hash modulo the partition count)
 * puts `key` on. Computed by that very partitioner, so ownership and where state records land always agree.
 */
export function partitionForKey(key: string, partitionCount: number): number {
  let metadata = metadataCache.get(partitionCount);
  if (!metadata) {
    metadata = Array.from({ length: partitionCount }, (_, i) => ({
      partitionId: i,
      leader: 0,
      partitionErrorCode: 0,
      replicas: [0],
      isr: [0],
      offlineReplicas: [],
    }));
    metadataCache.set(partitionCount, metadata);
  }
  return partitioner({ topic: '', partitionMetadata: metadata, message: { key, value: null } });
}
