import type { EachBatchPayload, IHeaders, KafkaMessage } from 'kafkajs';
import type { CommitPosition, InRecord, PartitionBatch, RecordHeaders } from './types.js';

function fromKafkaHeaders(h: IHeaders | undefined): RecordHeaders {
  const out: RecordHeaders = {};
  if (!h) return out;
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    const one = Array.isArray(v) ? v[v.length - 1] : v;
    out[k] = Buffer.isBuffer(one) ? one.toString('utf8') : String(one);
  }
  return out;
}

export function toInRecord(topic: string, partition: number, m: KafkaMessage): InRecord {
  return {
    topic,
    partition,
    offset: m.offset,
    key: m.key ?? null,
    value: m.value ?? null,
    headers: fromKafkaHeaders(m.headers),
    timestamp: m.timestamp,
  };
}

function byTopic(
  offsets: readonly CommitPosition[],
): Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }> {
  const topics = new Map<string, Array<{ partition: number; offset: string }>>();
  for (const { topic, partition, offset } of offsets) {
    let ps = topics.get(topic);
    if (!ps) topics.set(topic, (ps = []));
    ps.push({ partition, offset });
  }
  return [...topics].map(([topic, partitions]) => ({ topic, partitions }));
}

/**
 * Our batch over kafkajs's `eachBatch` payload: the one place that knows that payload's shape. Offsets are resolved
 * by hand (the consumer runs with `eachBatchAutoResolve: false`).
 */
export function toPartitionBatch(p: EachBatchPayload): PartitionBatch {
  const { batch } = p;
  return {
    topic: batch.topic,
    partition: batch.partition,
    highWatermark: batch.highWatermark,
    records: batch.messages.map((m) => toInRecord(batch.topic, batch.partition, m)),
    lastOffset: () => batch.lastOffset(),
    resolveOffset: (o) => p.resolveOffset(o),
    commitIfNecessary: () => p.commitOffsetsIfNecessary(),
    commitOffsets: (offsets) => p.commitOffsetsIfNecessary({ topics: byTopic(offsets) }),
    heartbeat: () => p.heartbeat(),
    isRunning: () => p.isRunning(),
    isStale: () => p.isStale(),
  };
}
