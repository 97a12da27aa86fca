import { hostname } from 'node:os';
import { retryUntilDone } from '../shared/backoff.js';
import type { BackoffOptions } from '../shared/backoff.js';
import type { Clock } from '../shared/clock.js';
import { sleep } from '../shared/clock.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { BatchingSender, membershipProblem } from '../shared/kafka/index.js';
import type { Follower, GroupConsumer, KafkaClient, KafkaProducer } from '../shared/kafka/index.js';
import { CANCELS_TOPIC, parseCancelRequest } from '../shared/codecs/cancel-request.js';
import { Cancels } from './cancels.js';
import { RunLogSink } from './run-logs.js';
import type { ProcessorRegistry } from '../processors/registry.js';
import { BatchWorker } from './batch-worker.js';
import { Semaphore } from './semaphore.js';
import type { SecretSource } from './secrets.js';
import { TaskRunner } from './task-runner.js';
import type { TaskOutcome } from './task-runner.js';
import { ConsumerMetrics } from './metrics.js';
import type { Registry } from 'prom-client';
import type { Tracing } from '../shared/tracing.js';

export interface TaskConsumerOptions {
  kafka: KafkaClient;
  topics: string[];
  /** @default 'taskConsumer' */
  groupId: string;
  registry: ProcessorRegistry;
  clock: Clock;
  logger: Logger;
  /** Tasks running at once across all partitions. @default 10 */
  concurrency: number;
  /** @default 5 */
  maxAttempts: number;
  /** How long a drain (or a revoked partition) waits for running tasks before aborting them. @default 25000 */
  drainTimeoutMs: number;
  /** Per-attempt timeout; 0 = none. @default 0 */
  taskTimeoutMs: number;
  /**
   * An attempt's EXECUTING event is written once it has run this long (0 = as it starts): a shorter run writes only
   * its final event. @default 500
   */
  executingAfterMs?: number;
  /** Waits between attempts of a task (always with full jitter). @default 200 ms doubling to 30 s */
  backoff?: BackoffOptions;
  onOutcome?(outcome: TaskOutcome): void;
  /** Where to register the consumer's metrics; none are kept without it. */
  metricsRegistry?: Registry;
  /** Resolves secret references in payloads. @default `TASKMANAGER_SECRET_*` of the environment */
  secrets?: SecretSource;
  /** The `consume` and `process` spans (docs/operations.md#traces). @default none */
  tracing?: Tracing;
}

/**
 * A member of the task consumer group. Shutdown order (as kafkajs's own): stop fetching → let running tasks
 * finish (abort them at the drain deadline) → commit what finished → leave the group → disconnect.
 */
export class TaskConsumer {
  private readonly consumer: GroupConsumer;
  private readonly producer: KafkaProducer;
  private worker: BatchWorker | undefined;
  private readonly drain = new AbortController();
  private stopping: Promise<void> | undefined;
  private partitions = 0;
  private readonly slots: Semaphore;
  private readonly metrics: ConsumerMetrics | undefined;
  private readonly cancels: Cancels;
  private cancelFollower: Follower | undefined;

  constructor(private readonly o: TaskConsumerOptions) {
    this.consumer = this.newConsumer();
    this.producer = o.kafka.producer({ idempotent: true });
    this.slots = new Semaphore(o.concurrency);
    this.cancels = new Cancels(() => o.clock.now());
    this.metrics = o.metricsRegistry
      ? new ConsumerMetrics(o.metricsRegistry, {
          inFlight: () => o.concurrency - this.slots.available,
          ready: () => this.readiness().ready,
        })
      : undefined;
  }

  /** Whether this member takes its share: in the group, with a coordinator that answers its heartbeats. */
  readiness(): { ready: boolean; reason: string; group: string; partitions: number } {
    const reason = this.stopping
      ? 'stopping'
      : (membershipProblem(this.consumer.health(), this.o.clock.now(), `consumer group ${this.o.groupId}`) ??
        'ok');
    return { ready: reason === 'ok', reason, group: this.o.groupId, partitions: this.partitions };
  }

  async start(): Promise<void> {
    const { logger } = this.o;
    const sender = new BatchingSender(this.producer);
    // Run logs through the same producer, in requests of their own: a log write that fails never fails an event.
    const runLogs = new RunLogSink(new BatchingSender(this.producer), logger);
    const runner = new TaskRunner({
      registry: this.o.registry,
      sender,
      clock: this.o.clock,
      logger,
      origin: { host: hostname(), pid: process.pid },
      maxAttempts: this.o.maxAttempts,
      taskTimeoutMs: this.o.taskTimeoutMs,
      ...(this.o.executingAfterMs === undefined ? {} : { executingAfterMs: this.o.executingAfterMs }),
      backoff: this.o.backoff,
      onOutcome: this.o.onOutcome,
      ...(this.metrics ? { metrics: this.metrics } : {}),
      ...(this.o.secrets ? { secrets: this.o.secrets } : {}),
      cancels: this.cancels,
      runLogs,
      ...(this.o.tracing ? { tracing: this.o.tracing } : {}),
    });
    this.worker = new BatchWorker({
      runner,
      slots: this.slots,
      ...(this.metrics ? { metrics: this.metrics } : {}),
      clock: this.o.clock,
      logger,
      drain: this.drain.signal,
      revokeTimeoutMs: this.o.drainTimeoutMs,
    });
    await this.connectWithRetry();
    await runLogs.open(this.o.kafka);
    // Read while the group is joined (both take a join); the first task waits for it (Cancels.ready).
    void this.followCancels().finally(() => this.cancels.caughtUp());
    await this.runConsumer();
  }

  /**
   * Reads `taskmanager.cancels` from its start, then follows it; no task starts before it was read (Cancels.ready), so
   * a task cancelled while it waited (here or in the backlog of a member that left) never starts. Without the topic, or without the right to
   * read it, the consumer runs on and says once that cancel requests cannot reach it.
   */
  private async followCancels(): Promise<void> {
    const { logger } = this.o;
    try {
      if (!(await this.o.kafka.existingTopics([CANCELS_TOPIC])).has(CANCELS_TOPIC)) {
        logger.warn(
          `${CANCELS_TOPIC} does not exist: cancel requests cannot reach this consumer (create it with scripts/create-topics.sh)`,
        );
        return;
      }
      const follower = await this.o.kafka.follow(
        CANCELS_TOPIC,
        (r) => {
          const req = parseCancelRequest(r.value);
          if (req) this.cancels.add(req);
          else if (r.value !== null)
            logger.warn(`${CANCELS_TOPIC}/${r.partition}@${r.offset} is no cancel request; ignored`);
        },
        { fromBeginning: true },
      );
      if (this.stopping) {
        await follower.stop();
        return;
      }
      this.cancelFollower = follower;
      await follower.caughtUp;
      logger.debug(`${this.cancels.size} cancel request(s) read from ${CANCELS_TOPIC}`);
    } catch (err) {
      logger.error(
        `cannot follow ${CANCELS_TOPIC} (${errorMessage(err)}): cancel requests cannot reach this consumer`,
      );
    }
  }

  private newConsumer(): GroupConsumer {
    return this.o.kafka.consumer({
      groupId: this.o.groupId,
      rebalanceTimeoutMs: Math.max(30_000, this.o.drainTimeoutMs + 5000),
      clock: this.o.clock,
    });
  }

  private async runConsumer(): Promise<void> {
    const { logger } = this.o;
    const consumer = this.consumer;
    const worker = this.worker as BatchWorker;
    consumer.onGroupJoin(({ memberId, assignment }) => {
      const parts = Object.entries(assignment).map(
        ([t, ps]) => `${t}[${[...ps].sort((a, b) => a - b).join(',')}]`,
      );
      worker.joined();
      this.metrics?.forgetLag();
      this.metrics?.joined();
      this.partitions = Object.values(assignment).reduce((n, ps) => n + ps.length, 0);
      logger.info(`joined group ${this.o.groupId}: ${this.partitions} partitions ${parts.join(' ')}`, {
        memberId,
      });
    });
    consumer.onCrash((err, restart) => {
      // After other errors the member starts itself again (GroupConsumer); uncommitted tasks are re-delivered.
      if (restart)
        logger.warn(`consumer lost its connection (${errorMessage(err)}); the Kafka client restarts it`);
    });
    await consumer.connect();
    await this.waitForTopics();
    await consumer.subscribe(this.o.topics, true);
    // Batches are taken at once and their tasks outlive them (BatchWorker): what is committed is what finished, by
    // the worker, never kafkajs's resolved position; before each join the worker finishes its tasks and commits.
    consumer.onBatchDone((topic, partition, lastOffset) => worker.batchDone(topic, partition, lastOffset));
    await consumer.run({
      partitionsConsumedConcurrently: Math.max(1, Math.min(this.o.concurrency, 64)),
      autoCommit: false,
      eachBatch: (batch) => worker.handle(batch),
      beforeJoin: () => worker.beforeJoin(),
    });
    logger.info(
      `consuming ${this.o.topics.join(', ')} as group ${this.o.groupId} (concurrency ${this.o.concurrency})`,
    );
  }

  /** Retries a broker that is down at start-up, with capped backoff (0.5 s doubling to 5 s) and one line per try. */
  private connectWithRetry(): Promise<void> {
    return retryUntilDone(() => this.producer.connect(), {
      backoff: { baseMs: 500, maxMs: 5000 },
      clock: this.o.clock,
      onFailure: (err, attempt, delay) => {
        if (this.stopping) throw err;
        this.o.logger.error(`cannot reach Kafka (${errorMessage(err)}); retrying in ${delay} ms`, {
          attempt,
        });
      },
    });
  }

  /** A topic that does not exist yet is waited for (one line per minute), not a reason to exit. */
  private async waitForTopics(): Promise<void> {
    for (let i = 0; ; i++) {
      const existing = await this.o.kafka.existingTopics(this.o.topics);
      const missing = this.o.topics.filter((t) => !existing.has(t));
      if (missing.length === 0) return;
      if (this.stopping) throw new Error(`stopped while waiting for topics ${missing.join(', ')}`);
      if (i % 30 === 0) {
        this.o.logger.warn(
          `topic(s) ${missing.join(', ')} do not exist yet; waiting (create them with scripts/create-topics.sh --topic NAME)`,
        );
      }
      await sleep(this.o.clock, 2000);
    }
  }

  /** Drains and leaves the group. Idempotent: later calls share the first one's promise. */
  stop({ deadlineMs }: { deadlineMs: number } = { deadlineMs: this.o.drainTimeoutMs }): Promise<void> {
    this.stopping ??= (async () => {
      const timer = this.o.clock.setTimeout(() => {
        this.o.logger.warn(
          `drain deadline (${deadlineMs} ms) passed: aborting running tasks; they will be re-delivered`,
        );
        this.drain.abort(new Error('drain deadline passed'));
      }, deadlineMs);
      try {
        // Take nothing new, let the running tasks finish (the timer aborts them), commit what finished; then kafkajs
        // stops fetching and leaves the group.
        await this.worker?.stop();
        await this.consumer.stop();
        await this.consumer.disconnect();
        // One still starting stops itself (followCancels).
        await this.cancelFollower?.stop();
        await this.producer.disconnect();
      } finally {
        this.o.clock.clearTimeout(timer);
      }
      this.o.logger.info('consumer stopped: finished tasks committed, group left');
    })();
    return this.stopping;
  }

  /** Second signal: abort running tasks now; what finished is still committed by the stop in progress. */
  abortNow(): void {
    this.drain.abort(new Error('stopped at once'));
  }
}
