import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { toInRecord } from './records.js';
import type { InRecord } from './types.js';

/**
 * Reads a topic from the beginning (or only its last `tail` offsets per partition) up to the end offsets it has
 * when the call starts (read_committed), without committing anything; the throw-away group is deleted afterwards.
 * With `partitions`, only those (the others are fetched from their end, so nothing of them is read).
 */
export async function readTopicToEnd(
  kafka: Kafka,
  topic: string,
  timeoutMs = 30_000,
  tail?: number,
  partitions?: readonly number[],
): Promise<InRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  const groupId = `taskmanager-reader-${randomUUID()}`;
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    const remaining = new Map<number, bigint>();
    const starts = new Map<number, bigint>();
    for (const p of ends) {
      const [low, high] = [BigInt(p.low), BigInt(p.high)];
      if (partitions && !partitions.includes(p.partition)) {
        starts.set(p.partition, high);
        continue;
      }
      if (high <= low) continue;
      remaining.set(p.partition, high);
      if (tail !== undefined && high - BigInt(tail) > low) starts.set(p.partition, high - BigInt(tail));
    }
    const out: InRecord[] = [];
    if (remaining.size === 0) return out;
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, readUncommitted: false });
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      let finish: () => void = () => undefined;
      // Emitted after every batch, including those holding only transaction markers (never passed to eachBatch).
      consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
        const end = remaining.get(e.payload.partition);
        if (end !== undefined && BigInt(e.payload.lastOffset) + 1n >= end)
          remaining.delete(e.payload.partition);
        if (remaining.size === 0) finish();
      });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`reading ${topic} did not reach its end within ${timeoutMs} ms`)),
          timeoutMs,
        );
        const done = (): void => {
          clearTimeout(timer);
          resolve();
        };
        finish = done;
        if (remaining.size === 0) done();
        consumer
          .run({
            autoCommit: false,
            eachBatch: async ({ batch }) => {
              const end = remaining.get(batch.partition);
              if (end === undefined) return;
              for (const m of batch.messages) {
                if (BigInt(m.offset) < end) out.push(toInRecord(batch.topic, batch.partition, m));
              }
            },
          })
          .then(() => {
            for (const [partition, offset] of starts)
              consumer.seek({ topic, partition, offset: String(offset) });
          })
          .catch(reject);
      });
    } finally {
      await consumer.disconnect();
    }
    out.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
    return out;
  } finally {
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect();
  }
}
