/**
 * Our TaskConsumer set up as the `taskconsumer` CLI sets it up (same defaults, winston logger), in the benchmark's
 * own process so its outcomes can be counted through the `onOutcome` hook.
 */
import { TaskConsumer } from '../../src/consumer/task-consumer.js';
import type { TaskOutcome } from '../../src/consumer/task-runner.js';
import type { ProcessorRegistry } from '../../src/processors/registry.js';
import { systemClock } from '../../src/shared/clock.js';
import { KafkaClient } from '../../src/shared/kafka/index.js';
import type { KafkaConnection } from '../../src/shared/kafka/security.js';
import type { Logger, LogLevel } from '../../src/shared/logger.js';
import { parseLogLevel } from '../../src/shared/logger.js';
import { createWinstonLogger } from '../../src/shared/winston-logger.js';
import { waitFor } from '../../test/kit/wait.js';

export interface OurConsumerOptions {
  brokers: string[];
  /** TLS/SASL. @default plaintext */
  connection?: KafkaConnection;
  topic: string;
  groupId: string;
  registry: ProcessorRegistry;
  /** `--concurrency`. @default 10 (the CLI's) */
  concurrency?: number;
  onOutcome(outcome: TaskOutcome): void;
}

export interface RunningConsumer {
  consumer: TaskConsumer;
  /** Resolves with `performance.now()` when the consumer joined its group and got partitions. */
  joined: Promise<number>;
  stop(): Promise<void>;
}

/** Winston at BENCH_LOG_LEVEL (default warn, so the tables stay readable), to stderr, as the CLI logs. */
export function benchLogger(component: string): Logger {
  const level: LogLevel = parseLogLevel(process.env['BENCH_LOG_LEVEL'] ?? 'warn') ?? 'warn';
  return createWinstonLogger({ level, format: 'text', base: { component } });
}

export async function startOurConsumer(o: OurConsumerOptions): Promise<RunningConsumer> {
  const logger = benchLogger('taskconsumer');
  const kafka = new KafkaClient({
    brokers: o.brokers,
    logger,
    clientId: `bench-consumer-${process.pid}`,
    ...(o.connection ? { connection: o.connection } : {}),
  });
  const drainTimeoutMs = 25_000;
  const consumer = new TaskConsumer({
    kafka,
    topics: [o.topic],
    groupId: o.groupId,
    registry: o.registry,
    clock: systemClock,
    logger,
    concurrency: o.concurrency ?? 10,
    maxAttempts: 5,
    drainTimeoutMs,
    taskTimeoutMs: 0,
    onOutcome: o.onOutcome,
  });
  await consumer.start();
  const joined = waitFor(() => consumer.readiness().ready, {
    timeoutMs: 120_000,
    intervalMs: 2,
    what: () => `our consumer to be ready (${consumer.readiness().reason})`,
  }).then(() => performance.now());
  return { consumer, joined, stop: () => consumer.stop({ deadlineMs: drainTimeoutMs }) };
}
