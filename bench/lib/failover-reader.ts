/**
 * What the failover benchmark knows happened: every record of a run's task topic and the status events of its
 * tasks, read (read_committed) by a background consumer as they arrive. The shared events topic holds millions of
 * other records, so it is read from its end offsets at start and filtered by the run's taskId prefix.
 */
import { randomBytes } from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';
import { deleteGroups, whenReadable } from './kafka-bench.js';
import { sleep } from './report.js';

export interface TopicSpec {
  topic: string;
  /** Start at the end offsets it has now instead of the beginning. */
  fromEnd?: boolean;
  /** Records whose value fails this are not kept (a cheap test before JSON parsing). */
  keep?(value: string): boolean;
}

export interface Received<T> {
  value: T;
  partition: number;
  /** `Date.now()` when this reader got it: an upper bound of when it became visible in Kafka. */
  receivedAt: number;
}

export class RunReader {
  private readonly seen = new Set<string>();
  private readonly byTopic = new Map<string, Array<Received<unknown>>>();
  /** `topic/partition` → offset after the last record or marker read. */
  private readonly position = new Map<string, number>();
  private consumer: Consumer | undefined;
  private readonly groupId = `failover-reader-${randomBytes(4).toString('hex')}`;

  private constructor(
    private readonly kafka: Kafka,
    private readonly specs: TopicSpec[],
  ) {
    for (const s of specs) this.byTopic.set(s.topic, []);
  }

  static async start(kafka: Kafka, specs: TopicSpec[]): Promise<RunReader> {
    const reader = new RunReader(kafka, specs);
    await reader.begin();
    return reader;
  }

  private async begin(): Promise<void> {
    // On a broker that has just started, even the shared topics may not have their leaders yet.
    await whenReadable(
      this.kafka,
      this.specs.map((s) => s.topic),
    );
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      // A fresh group's committed offsets are where it starts: the current ends of the topics read from the end.
      for (const s of this.specs.filter((x) => x.fromEnd)) {
        const ends = await admin.fetchTopicOffsets(s.topic);
        await admin.setOffsets({
          groupId: this.groupId,
          topic: s.topic,
          partitions: ends.map((o) => ({ partition: o.partition, offset: o.high })),
        });
      }
    } finally {
      await admin.disconnect();
    }
    const consumer = this.kafka.consumer({
      groupId: this.groupId,
      maxWaitTimeInMs: 100,
      readUncommitted: false,
      // It must outlive a broker restart in the broker scenario.
      retry: { retries: 30, initialRetryTime: 200, maxRetryTime: 2000, restartOnFailure: async () => true },
    });
    this.consumer = consumer;
    let joined = false;
    consumer.on(consumer.events.GROUP_JOIN, () => (joined = true));
    // Also fires for batches holding only transaction markers, which eachBatch never sees.
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
      const key = `${e.payload.topic}/${e.payload.partition}`;
      const next = Number(e.payload.lastOffset) + 1;
      if (next > (this.position.get(key) ?? 0)) this.position.set(key, next);
    });
    await consumer.connect();
    await consumer.subscribe({ topics: this.specs.map((s) => s.topic), fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const spec = this.specs.find((s) => s.topic === batch.topic);
        const list = this.byTopic.get(batch.topic);
        if (!spec || !list) return;
        const receivedAt = Date.now();
        for (const m of batch.messages) {
          // After a restart (broker scenario) a batch can come again: keep each record once.
          const id = `${batch.topic}/${batch.partition}/${m.offset}`;
          if (this.seen.has(id) || !m.value) continue;
          this.seen.add(id);
          const text = m.value.toString('utf8');
          if (spec.keep && !spec.keep(text)) continue;
          try {
            list.push({ value: JSON.parse(text) as unknown, partition: batch.partition, receivedAt });
          } catch {
            console.error(`failover reader: not JSON at ${id}`);
          }
        }
      },
    });
    const deadline = Date.now() + 30_000;
    while (!joined) {
      if (Date.now() > deadline) throw new Error(`reader ${this.groupId} did not join within 30 s`);
      await sleep(20);
    }
  }

  /** Task messages read so far from a task topic. */
  tasks(topic: string): Array<Received<TaskMessage>> {
    return (this.byTopic.get(topic) ?? []) as Array<Received<TaskMessage>>;
  }

  /** Status events read so far from an events topic. */
  events(topic: string): Array<Received<StatusEvent>> {
    return (this.byTopic.get(topic) ?? []) as Array<Received<StatusEvent>>;
  }

  /** Waits until this reader has every record the topic holds now. */
  async caughtUp(topic: string, timeoutMs = 30_000): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
    const behind = () =>
      ends.filter((p) => Number(p.high) > (this.position.get(`${topic}/${p.partition}`) ?? 0));
    const deadline = Date.now() + timeoutMs;
    while (behind().length > 0) {
      if (Date.now() > deadline) {
        throw new Error(
          `reader did not catch up with ${topic} (partitions ${behind().map((p) => p.partition)})`,
        );
      }
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect().catch((err: unknown) => console.error(`reader stop: ${String(err)}`));
    await deleteGroups(this.kafka, [this.groupId]);
  }
}
