import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import type { Consumer, KafkaMessage } from 'kafkajs';
import { brokers, uniqueName } from './kafka.js';
import { trackPositions } from '../../kit/topic-reader.js';
import { ROOT } from './processes.js';
import { waitFor } from '../../kit/wait.js';

const run = promisify(execFile);

/** Java's String.hashCode (UTF-16 code units, 32-bit overflow). */
export function javaStringHashCode(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(31, h) + s.charCodeAt(i)) | 0;
  return h;
}

/** Kafka's Utils.abs: Math.abs, except Integer.MIN_VALUE → 0. */
const kafkaAbs = (n: number): number => (n === -2147483648 ? 0 : Math.abs(n));

/** The `__transaction_state` partition that holds a transactional id (TransactionStateManager.partitionFor). */
export function transactionStatePartition(transactionalId: string, partitionCount: number): number {
  return kafkaAbs(javaStringHashCode(transactionalId)) % partitionCount;
}

/**
 * A 3-node KRaft cluster of `scripts/kafka-local --nodes 3` in a fresh data dir, on ports 200 above the tests' own
 * broker (node i's client port = base + (i-1)*10; node.id = i), for one test file.
 */
export class LocalCluster {
  readonly data = mkdtempSync(join(tmpdir(), 'kafka-cluster-'));
  readonly port = Number(brokers().split(',')[0]!.split(':').pop()) + 200;
  readonly nodes = 3;

  private env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      KAFKA_LOCAL_NODES: String(this.nodes),
      KAFKA_LOCAL_PORT: String(this.port),
      KAFKA_LOCAL_CONTROLLER_PORT: String(this.port + 1),
      KAFKA_LOCAL_DATA: this.data,
    };
  }

  /** Runs `scripts/kafka-local CMD ARGS` on this cluster; its output. */
  async script(cmd: string, ...args: string[]): Promise<string> {
    const r = await run('bash', [join(ROOT, 'scripts/kafka-local'), cmd, ...args], {
      env: this.env(),
      cwd: ROOT,
    });
    return (r.stdout + r.stderr).trim();
  }

  get bootstrap(): string {
    return Array.from({ length: this.nodes }, (_, i) => `127.0.0.1:${this.port + i * 10}`).join(',');
  }

  start(): Promise<string> {
    return this.script('start');
  }

  async stop(): Promise<void> {
    await this.script('stop').catch(() => undefined);
    // CF_KEEP_DATA=1 keeps the stopped cluster's data (to inspect its logs and segments); delete it yourself.
    if (process.env.CF_KEEP_DATA) console.log(`cluster data kept in ${this.data}`);
    else rmSync(this.data, { recursive: true, force: true });
  }

  /**
   * Creates the shared topics and the task topics with scripts/create-topics.sh (RF 3, min ISR 2 on 3 brokers).
   * On a cluster that has just started, its describe step may ask a broker that does not know the new topics yet
   * ("This server does not host this topic-partition", exit 1); the script is idempotent, so it is run again.
   */
  async createTopics(taskTopics: string[]): Promise<string> {
    const argv = [
      join(ROOT, 'scripts/create-topics.sh'),
      '--bootstrap-server',
      this.bootstrap,
      ...taskTopics.flatMap((t) => ['--topic', t]),
    ];
    let out = '';
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await run('bash', argv, { cwd: ROOT });
        return `${out}${r.stdout}${r.stderr}`;
      } catch (err) {
        const e = err as { code?: number; stdout?: string; stderr?: string };
        out += `attempt ${attempt} exited ${e.code}: ${e.stdout ?? ''}${e.stderr ?? ''}\n`;
        if (attempt >= 3 || e.code !== 1) throw new Error(`create-topics.sh failed:\n${out}`);
      }
    }
  }

  kafka(clientId = 'tests-cluster'): Kafka {
    return new Kafka({
      brokers: this.bootstrap.split(','),
      clientId,
      logLevel: logLevel.NOTHING,
      connectionTimeout: 1000,
      requestTimeout: 5000,
      retry: { initialRetryTime: 100, retries: 5, maxRetryTime: 1000 },
    });
  }

  /** Runs `fn` with a fresh admin client (a cluster whose nodes come and go: no connection is reused). */
  async withAdmin<T>(fn: (admin: ReturnType<Kafka['admin']>) => Promise<T>): Promise<T> {
    const admin = this.kafka().admin();
    await admin.connect();
    try {
      return await fn(admin);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  /** Partition → leader node id, and partition → ISR, of each topic. */
  async partitions(
    topics: string[],
  ): Promise<Map<string, Array<{ partition: number; leader: number; isr: number[] }>>> {
    return this.withAdmin(async (admin) => {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics });
      return new Map(
        meta.map((t) => [
          t.name,
          t.partitions
            .map((p) => ({ partition: p.partitionId, leader: p.leader, isr: p.isr }))
            .sort((a, b) => a.partition - b.partition),
        ]),
      );
    });
  }

  /** True when every partition of the topics has a live leader and all nodes in its ISR. */
  async fullyReplicated(topics: string[]): Promise<boolean> {
    const all = await this.partitions(topics);
    return [...all.values()].every((ps) => ps.every((p) => p.leader >= 1 && p.isr.length === this.nodes));
  }

  /** The node (id) that coordinates each transactional id: the leader of its `__transaction_state` partition. */
  async transactionCoordinators(ids: string[]): Promise<Map<string, number>> {
    const state = (await this.partitions(['__transaction_state'])).get('__transaction_state') ?? [];
    if (state.length === 0) throw new Error('__transaction_state has no partitions yet');
    const leaderOf = new Map(state.map((p) => [p.partition, p.leader]));
    return new Map(ids.map((id) => [id, leaderOf.get(transactionStatePartition(id, state.length)) ?? -1]));
  }
}

/** A record as read, with its producer timestamp (kafkajs: when the produce request was built) and when we got it. */
export interface StampedRecord {
  topic: string;
  partition: number;
  offset: string;
  value: string | null;
  /** The record's CreateTime. */
  timestamp: number;
  /** When this reader received it. */
  receivedAt: number;
}

/**
 * Reads topics from the beginning (read_committed) in the background and keeps every record once (a consumer that
 * restarts during a broker failure may read a batch again: records are kept by position).
 */
export class StampedReader {
  private readonly byPosition = new Map<string, StampedRecord>();
  readonly records: StampedRecord[] = [];
  private readonly position = new Map<string, number>();
  private consumer: Consumer | undefined;
  /** Parsed values by topic, in arrival order (parsed once). */
  private readonly parsed = new Map<string, unknown[]>();

  constructor(
    private readonly kafka: () => Kafka,
    private readonly topics: string[],
  ) {}

  async start(): Promise<this> {
    this.consumer = this.kafka().consumer({
      groupId: uniqueName('cluster-reader'),
      maxWaitTimeInMs: 100,
      sessionTimeout: 10_000,
      retry: { initialRetryTime: 100, retries: 10, maxRetryTime: 1000, restartOnFailure: async () => true },
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: this.topics, fromBeginning: true });
    const joined = trackPositions(this.consumer, this.position);
    await this.consumer.run({
      eachBatch: async ({ batch }) => {
        const now = Date.now();
        for (const m of batch.messages) this.keep(batch.topic, batch.partition, m, now);
      },
    });
    await waitFor(joined, { timeoutMs: 30_000, what: 'the reader to join its group' });
    return this;
  }

  private keep(topic: string, partition: number, m: KafkaMessage, now: number): void {
    const key = `${topic}/${partition}/${m.offset}`;
    if (this.byPosition.has(key)) return;
    const r: StampedRecord = {
      topic,
      partition,
      offset: m.offset,
      value: m.value ? m.value.toString('utf8') : null,
      timestamp: Number(m.timestamp),
      receivedAt: now,
    };
    this.byPosition.set(key, r);
    this.records.push(r);
    let list = this.parsed.get(topic);
    if (!list) this.parsed.set(topic, (list = []));
    try {
      list.push(r.value === null ? null : { ...(JSON.parse(r.value) as object), _rec: r });
    } catch {
      list.push(null);
    }
  }

  /** Parsed JSON values of a topic, each with `_rec` (its record). */
  values<T>(topic: string): Array<T & { _rec: StampedRecord }> {
    return (this.parsed.get(topic) ?? []).filter((v) => v !== null) as Array<T & { _rec: StampedRecord }>;
  }

  /** Waits until this reader has every record the topic holds now (its end offsets, markers included). */
  async caughtUp(cluster: LocalCluster, topic: string, timeoutMs = 60_000): Promise<void> {
    const ends = await cluster.withAdmin((a) => a.fetchTopicOffsets(topic));
    await waitFor(
      () => ends.every((p) => Number(p.high) <= (this.position.get(`${topic}/${p.partition}`) ?? 0)),
      { timeoutMs, what: `the reader to catch up with ${topic}` },
    );
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect().catch(() => undefined);
  }
}
