import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { brokers } from './kafka.js';
import { TopicReader } from '../../kit/topic-reader.js';
import type { ReadRecord } from '../../kit/topic-reader.js';
import { ROOT } from './processes.js';

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
export type StampedRecord = ReadRecord;

/**
 * The kit's reader with the cluster's retry settings (it outlives a node's failure; a batch read again after a
 * restart is kept once), whose values carry their record as `_rec`.
 */
export class StampedReader extends TopicReader {
  /** Per topic, the values read so far with `_rec` (each made once). */
  private readonly stamped = new Map<string, unknown[]>();

  constructor(kafka: () => Kafka, topics: string[]) {
    super(kafka, topics, {
      groupPrefix: 'cluster-reader',
      consumer: {
        sessionTimeout: 10_000,
        retry: { initialRetryTime: 100, retries: 10, maxRetryTime: 1000, restartOnFailure: async () => true },
      },
    });
  }

  /** Parsed JSON values of a topic, each with `_rec` (its record). */
  override values<T>(topic: string): Array<T & { _rec: StampedRecord }> {
    const received = this.received<T>(topic);
    let list = this.stamped.get(topic);
    if (!list) this.stamped.set(topic, (list = []));
    for (let i = list.length; i < received.length; i++)
      list.push({ ...received[i]!.value, _rec: received[i]!.record });
    return list as Array<T & { _rec: StampedRecord }>;
  }
}
