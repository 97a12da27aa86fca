import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import type { GroupConsumer } from './group-consumer.js';
import type { InRecord } from './types.js';

export interface FollowOptions {
  /** Start at each partition's first offset. */
  fromBeginning?: boolean;
  /** Start at each partition's first record written at or after this time (ms since the epoch). */
  fromTimestamp?: number;
  /**
   * Start each listed partition at this offset (a checkpoint: the next offset to read), others at their first
   * offset; an offset outside a partition's first..end offsets is taken as its first one.
   */
  fromOffsets?: ReadonlyMap<number, string>;
  /**
   * Collect records for up to this long per fetch: each reaches `onRecord` up to this much later, and records
   * written one at a time (an HTTP create each) cost one fetch per batch instead of one fetch each.
   */
  batchMs?: number;
}

export interface Follower {
  /** Resolves once everything written before the follower started was read (at once when following from the end). */
  readonly caughtUp: Promise<void>;
  /**
   * The next offset it reads of a partition (transaction markers read included): every record before it reached
   * `onRecord`, or was aborted.
   */
  position(partition: number): bigint | undefined;
  stop(): Promise<void>;
}

/**
 * Follows a topic (read_committed) from the end offsets it has when the call starts, or with `fromBeginning`
 * from its first offsets: every record written after that point reaches `onRecord`, whatever the time the
 * throw-away group takes to join. Nothing is committed; the group is deleted at stop.
 */
export async function followTopic(
  kafka: Kafka,
  newConsumer: (groupId: string) => GroupConsumer,
  topic: string,
  onRecord: (r: InRecord) => void,
  { fromBeginning = false, fromTimestamp, fromOffsets }: FollowOptions = {},
): Promise<Follower> {
  const admin = kafka.admin();
  await admin.connect();
  const groupId = `taskmanager-follower-${randomUUID()}`;
  const consumer = newConsumer(groupId);
  const remaining = new Map<number, bigint>();
  /** Where to go on from, per partition (see below). */
  const next = new Map<number, string>();
  let caughtUp: () => void = () => undefined;
  const done = new Promise<void>((r) => (caughtUp = r));
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    const start = new Map(offsets.map((p) => [p.partition, fromBeginning ? p.low : p.high]));
    for (const p of fromOffsets ? offsets : []) {
      const at = BigInt(fromOffsets!.get(p.partition) ?? p.low);
      start.set(p.partition, at >= BigInt(p.low) && at <= BigInt(p.high) ? at.toString() : p.low);
    }
    if (fromTimestamp !== undefined && !fromBeginning)
      for (const p of await admin.fetchTopicOffsetsByTimestamp(topic, fromTimestamp)) {
        // Nothing that recent gives -1, which kafkajs turns into a high watermark fetched now, later than the end
        // read above: starting there would skip what was written in between. Never start past that first end.
        const end = BigInt(start.get(p.partition) ?? '0');
        const at = BigInt(p.offset);
        if (at >= 0n) start.set(p.partition, (at < end ? at : end).toString());
      }
    for (const p of offsets) {
      const from = BigInt(start.get(p.partition) ?? p.high);
      if (BigInt(p.high) > from) remaining.set(p.partition, BigInt(p.high));
    }
    if (remaining.size === 0) caughtUp();
    // Where to go on from, per partition. Nothing is committed, so a member restarted after a crash (a broker
    // restart) would start at the latest offsets and skip what was written meanwhile: every join seeks here.
    for (const p of offsets) next.set(p.partition, start.get(p.partition) ?? p.high);
    // On every join, the first one included: a first join that fails is retried by a restarted member, and a
    // seek made before it would be lost with the old one.
    consumer.onGroupJoin(() => {
      for (const [partition, offset] of next) consumer.seek(topic, partition, offset);
    });
    // After every batch, markers-only ones included (those never reach eachBatch).
    consumer.onBatchDone((_topic, partition, lastOffset) => {
      const after = (BigInt(lastOffset) + 1n).toString();
      if (BigInt(after) > BigInt(next.get(partition) ?? '0')) next.set(partition, after);
      const end = remaining.get(partition);
      if (end !== undefined && BigInt(lastOffset) + 1n >= end) remaining.delete(partition);
      if (remaining.size === 0) caughtUp();
    });
    await consumer.connect();
    await consumer.subscribe([topic], false);
    await consumer.run({
      partitionsConsumedConcurrently: 1,
      autoCommit: false,
      eachBatch: async (batch) => {
        for (const r of batch.records) {
          onRecord(r);
          next.set(batch.partition, (BigInt(r.offset) + 1n).toString());
        }
        // Batches are resolved by hand (GroupConsumer): without this the next fetch would start here again.
        batch.resolveOffset(batch.lastOffset());
      },
    });
  } catch (err) {
    await consumer.disconnect().catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
    throw err;
  }
  return {
    caughtUp: done,
    position: (partition) => {
      const at = next.get(partition);
      return at === undefined ? undefined : BigInt(at);
    },
    stop: async () => {
      await consumer.disconnect().catch(() => undefined);
      await admin.deleteGroups([groupId]).catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
    },
  };
}
