#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { systemClock } from '../shared/clock.js';
import { KafkaClient } from '../shared/kafka/index.js';
import { exitAfterFlush, installShutdown } from '../shared/lifecycle.js';
import {
  brokersOption,
  logFormatOption,
  logLevelOption,
  loggerFromOptions,
  normalizeGoFlags,
  parseBrokers,
  positiveInt,
} from '../shared/cli-common.js';
import { topicNameProblem } from '../shared/config/topic-name.js';
import { AppError } from '../shared/errors.js';
import { ProcessorRegistry } from '../processors/registry.js';
import { TaskConsumer } from './task-consumer.js';

interface RunOpts {
  brokers: string;
  topic: string[];
  group: string;
  concurrency: number;
  processors?: string[];
  maxAttempts: number;
  drainTimeoutMs: number;
  taskTimeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  logLevel: string;
  logFormat: string;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [
    ...(previous ?? []),
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

function nonNegativeInt(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0)
      throw new AppError('USAGE', `${name}: expected an integer >= 0, got ${JSON.stringify(v)}`);
    return n;
  };
}

async function run(opts: RunOpts): Promise<void> {
  const logger = loggerFromOptions(opts, { component: 'taskconsumer' });
  const topics = opts.topic.length > 0 ? opts.topic : ['taskTopic'];
  for (const t of topics) {
    const problem = topicNameProblem(t);
    if (problem) throw new AppError('USAGE', `--topic ${JSON.stringify(t)}: ${problem}`);
  }
  const registry = new ProcessorRegistry();
  for (const m of opts.processors ?? []) {
    const added = await registry.loadModule(m);
    logger.info(`loaded processors from ${m}: ${added.join(', ')}`);
  }
  const kafka = new KafkaClient({
    brokers: parseBrokers(opts.brokers),
    logger,
    clientId: `taskconsumer-${process.pid}`,
  });
  const consumer = new TaskConsumer({
    kafka,
    topics,
    groupId: opts.group,
    registry,
    clock: systemClock,
    logger,
    concurrency: opts.concurrency,
    maxAttempts: opts.maxAttempts,
    drainTimeoutMs: opts.drainTimeoutMs,
    taskTimeoutMs: opts.taskTimeoutMs,
    backoff: { baseMs: opts.retryBaseMs, maxMs: opts.retryMaxMs },
  });
  installShutdown({
    logger,
    graceful: async () => {
      await consumer.stop({ deadlineMs: opts.drainTimeoutMs });
      return 0;
    },
    forced: async () => consumer.abortNow(),
  });
  await consumer.start();
}

const program = new Command()
  .name('taskconsumer')
  .description('Runs task messages from Kafka through their processors, as one member of a consumer group.')
  .showHelpAfterError()
  .exitOverride()
  .addOption(brokersOption())
  .addOption(
    new Option('-t, --topic <topic>', 'task topic to consume (repeatable; default taskTopic)')
      .argParser(collect)
      .env('TASKCONSUMER_TOPICS'),
  )
  .addOption(
    new Option('-g, --group <id>', 'consumer group').env('TASKCONSUMER_GROUP').default('taskConsumer'),
  )
  .addOption(
    new Option('-c, --concurrency <n>', 'tasks running at once')
      .argParser(positiveInt('--concurrency'))
      .default(10),
  )
  .addOption(
    new Option('--processors <module>', 'ES module whose exports add processors (repeatable)').argParser(
      collect,
    ),
  )
  .addOption(
    new Option('--max-attempts <n>', 'attempts before a task goes to the DLQ')
      .argParser(positiveInt('--max-attempts'))
      .default(5),
  )
  .addOption(
    new Option(
      '--drain-timeout-ms <ms>',
      'on SIGINT/SIGTERM, how long running tasks may finish before they are aborted',
    )
      .argParser(nonNegativeInt('--drain-timeout-ms'))
      .default(25_000),
  )
  .addOption(
    new Option('--task-timeout-ms <ms>', 'abort one attempt of a task after this long (0 = no limit)')
      .argParser(nonNegativeInt('--task-timeout-ms'))
      .default(0),
  )
  .addOption(
    new Option(
      '--retry-base-ms <ms>',
      'first retry waits up to this long (doubling each attempt, full jitter)',
    )
      .argParser(positiveInt('--retry-base-ms'))
      .default(200),
  )
  .addOption(
    new Option('--retry-max-ms <ms>', 'longest wait between two attempts')
      .argParser(positiveInt('--retry-max-ms'))
      .default(30_000),
  )
  .addOption(logLevelOption())
  .addOption(logFormatOption())
  .action(async (opts: RunOpts) => run({ ...opts, topic: opts.topic ?? [] }));

try {
  await program.parseAsync(normalizeGoFlags(process.argv.slice(2)), { from: 'user' });
} catch (err) {
  if (err instanceof CommanderError) exitAfterFlush(err.exitCode === 0 ? 0 : 2);
  else {
    process.stderr.write(`taskconsumer: ${err instanceof Error ? err.message : String(err)}\n`);
    exitAfterFlush(err instanceof AppError && err.code === 'USAGE' ? 2 : 1);
  }
}
