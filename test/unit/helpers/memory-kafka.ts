import type { InRecord, KafkaClient, OutRecord } from '../../../src/shared/kafka/index.js';

type ActiveGroups = Awaited<ReturnType<KafkaClient['activeGroups']>>;

/**
 * The part of KafkaClient that taskapi uses (producers, followers, whole reads, group metadata), in memory: one
 * partition per topic, every topic exists, a record reaches the followers of its topic on the next turn of the event
 * loop (as a fetch would), so writes resolve through the views as they do against a broker. Followers and whole
 * reads are counted: each is a consumer group on a real broker.
 */
export class MemoryKafka {
  readonly topics = new Map<string, InRecord[]>();
  /** The consumer groups that have members now, as Kafka's group metadata lists them (tests set it). */
  groups: ActiveGroups = [];
  /** Each topic a follower was started on (one consumer group each), in order. */
  readonly followed: string[] = [];
  /** Each topic read whole with readToEnd (a throw-away consumer group each), in order. */
  readonly readWhole: string[] = [];
  private readonly followers = new Map<string, Array<(r: InRecord) => void>>();

  /** As a KafkaClient, for the code under test. */
  client(): KafkaClient {
    return this as unknown as KafkaClient;
  }

  existingTopics(topics: string[]): Promise<Set<string>> {
    return Promise.resolve(new Set(topics));
  }

  activeGroups(): Promise<ActiveGroups> {
    return Promise.resolve(this.groups);
  }

  partitionCount(): Promise<number> {
    return Promise.resolve(1);
  }

  readToEnd(topic: string): Promise<InRecord[]> {
    this.readWhole.push(topic);
    return Promise.resolve([...this.log(topic)]);
  }

  endOffsets(topic: string): Promise<Map<number, bigint>> {
    return Promise.resolve(new Map([[0, BigInt(this.log(topic).length)]]));
  }

  producer(): {
    connect(): Promise<void>;
    disconnect(): Promise<void>;
    send(records: readonly OutRecord[]): Promise<void>;
    sendOne(record: OutRecord): Promise<{ partition: number; offset: string }>;
    sendInTransaction(records: readonly OutRecord[]): Promise<void>;
  } {
    return {
      connect: () => Promise.resolve(),
      disconnect: () => Promise.resolve(),
      send: (records) => {
        for (const r of records) this.append(r);
        return Promise.resolve();
      },
      sendOne: (record) => Promise.resolve({ partition: 0, offset: this.append(record).offset }),
      sendInTransaction: (records) => {
        for (const r of records) this.append(r);
        return Promise.resolve();
      },
    };
  }

  follow(
    topic: string,
    onRecord: (r: InRecord) => void,
  ): Promise<{ caughtUp: Promise<void>; stop(): Promise<void> }> {
    this.followed.push(topic);
    for (const r of this.log(topic)) onRecord(r);
    this.followers.set(topic, [...(this.followers.get(topic) ?? []), onRecord]);
    return Promise.resolve({ caughtUp: Promise.resolve(), stop: () => Promise.resolve() });
  }

  private log(topic: string): InRecord[] {
    let log = this.topics.get(topic);
    if (!log) this.topics.set(topic, (log = []));
    return log;
  }

  private append(r: OutRecord): InRecord {
    const log = this.log(r.topic);
    const record: InRecord = {
      topic: r.topic,
      partition: 0,
      offset: String(log.length),
      key: r.key === null ? null : Buffer.from(r.key),
      value: r.value === null ? null : Buffer.from(r.value),
      headers: { ...r.headers },
      timestamp: String(Date.now()),
    };
    log.push(record);
    setImmediate(() => {
      for (const f of this.followers.get(r.topic) ?? []) f(record);
    });
    return record;
  }
}
