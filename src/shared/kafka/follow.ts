import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { toInRecord } from './records.js';
import type { InRecord } from './types.js';

export interface Follower {
  stop(): Promise<void>;
}

/**
 * Follows a topic from the end offsets it has when the call starts (read_committed): every record written after
 * this call resolves reaches `onRecord`, whatever the time the throw-away group takes to join. Nothing is
 * committed; the group is deleted at stop.
 */
export async function followTopic(
  kafka: Kafka,
  topic: string,
  onRecord: (r: InRecord) => void,
): Promise<Follower> {
  const admin = kafka.admin();
  await admin.connect();
  const groupId = `taskmanager-follower-${randomUUID()}`;
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 1000, readUncommitted: false });
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: false });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) onRecord(toInRecord(batch.topic, batch.partition, m));
      },
    });
    for (const p of ends) consumer.seek({ topic, partition: p.partition, offset: p.high });
  } catch (err) {
    await consumer.disconnect().catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
    throw err;
  }
  return {
    stop: async () => {
      await consumer.disconnect().catch(() => undefined);
      await admin.deleteGroups([groupId]).catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
    },
  };
}
