#!/usr/bin/env node
import { statSync } from 'node:fs';
import { Option } from 'commander';
import { systemClock } from '../shared/clock.js';
import type { KafkaClient } from '../shared/kafka/index.js';
import { exitAfterFlush, installShutdown } from '../shared/lifecycle.js';
import { cliProgram, MetricsEndpoint, runProgram } from '../shared/cli-runner.js';
import {
  brokersOption,
  kafkaConfigOption,
  logFormatOption,
  logLevelOption,
  loggerFromOptions,
  metricsHostOption,
  metricsPortOption,
  commaList,
  connectKafka,
  positiveInt,
} from '../shared/cli-common.js';
import type { KafkaCliOptions } from '../shared/cli-common.js';
import { topicNameProblem } from '../shared/config/topic-name.js';
import { AppError } from '../shared/errors.js';
import { ProcessorRegistry } from '../processors/registry.js';
import { builtInProcessors, workProcessorCliOptions } from '../processors/built-in.js';
import type { WorkProcessorOptions } from '../processors/built-in.js';
import { SecretSource } from './secrets.js';
import { TaskConsumer } from './task-consumer.js';
import { DEFAULT_EXECUTING_AFTER_MS } from './task-runner.js';
import { formatDlq } from './dlq-commands.js';
import { listDlq, replayDlq } from '../shared/dlq-replay.js';
import { consumerGroupStatus } from './status-command.js';
import { runLogs } from './logs-command.js';
import { LOGS_TOPIC } from '../shared/codecs/run-log.js';
import {
  CANCELS_TOPIC,
  cancelRecord,
  cancelRequest,
  MAX_CANCEL_REASON,
} from '../shared/codecs/cancel-request.js';
import { createTracing, otelEndpointOption } from '../shared/tracing.js';

interface RunOpts extends WorkProcessorOptions {
  brokers?: string;
  kafkaConfig?: string;
  topic: string[];
  group: string;
  concurrency: number;
  processors?: string[];
  maxAttempts: number;
  drainTimeoutMs: number;
  taskTimeoutMs: number;
  executingAfterMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  logLevel: string;
  logFormat: string;
  metricsPort?: number;
  metricsHost: string;
  secretsDir?: string;
  otelEndpoint?: string;
}

/** `--secrets-dir`: a directory that exists, or a usage error at start rather than a DLQ full of tasks. */
function secretsDirOf(dir: string | undefined): string | undefined {
  if (dir === undefined) return undefined;
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    // said below
  }
  if (!isDir) throw new AppError('USAGE', `--secrets-dir ${dir}: not a directory`);
  return dir;
}

/** One line on what command tasks may do here: whoever can write a command task gets this much. */
function commandWarning(opts: RunOpts): string {
  const programs = opts.commandPrograms?.length ? opts.commandPrograms.join(', ') : 'any program';
  const images = `in containers of ${opts.commandImages?.length ? opts.commandImages.join(', ') : 'any image'}`;
  const where = opts.commandRequireImage
    ? `${images}, never on this host (--command-require-image)`
    : `on this host as the consumer's user, and ${images}`;
  return `CommandProcessor is on (--enable-command): task payloads can run ${programs} ${where}`;
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
  const secretsDir = secretsDirOf(opts.secretsDir);
  const registry = new ProcessorRegistry(builtInProcessors(opts));
  if (opts.enableCommand) logger.warn(commandWarning(opts));
  for (const m of opts.processors ?? []) {
    const added = await registry.loadModule(m);
    logger.info(`loaded processors from ${m}: ${added.join(', ')}`);
  }
  const tracing = createTracing({ endpoint: opts.otelEndpoint, service: 'taskconsumer', logger });
  const kafka = await connectKafka(opts, logger, `taskconsumer-${process.pid}`);
  const ops = new MetricsEndpoint(opts, 'taskconsumer');
  const consumer = new TaskConsumer({
    ...(ops.registry ? { metricsRegistry: ops.registry } : {}),
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
    executingAfterMs: opts.executingAfterMs,
    backoff: { baseMs: opts.retryBaseMs, maxMs: opts.retryMaxMs },
    secrets: new SecretSource(secretsDir === undefined ? {} : { dir: secretsDir }),
    tracing,
  });
  await ops.start(() => consumer.readiness(), logger);
  installShutdown({
    logger,
    graceful: async () => {
      await consumer.stop({ deadlineMs: opts.drainTimeoutMs });
      await tracing.shutdown();
      await ops.close();
      return 0;
    },
    forced: async () => consumer.abortNow(),
  });
  await consumer.start();
}

const program = cliProgram(
  'taskconsumer',
  'Runs task messages from Kafka through their processors, as one member of a consumer group.',
)
  .enablePositionalOptions()
  .addOption(brokersOption())
  .addOption(kafkaConfigOption())
  .addOption(
    new Option('-t, --topic <topic>', 'task topic to consume (repeatable; default taskTopic)')
      .argParser(commaList)
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
      commaList,
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
      '--executing-after-ms <ms>',
      "write a run's EXECUTING event once it has run this long (0 = as it starts); a shorter run writes only its final event",
    )
      .argParser(nonNegativeInt('--executing-after-ms'))
      .default(DEFAULT_EXECUTING_AFTER_MS),
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
  .addOption(
    new Option(
      '--secrets-dir <dir>',
      'where {"$secret": "NAME"} in a payload is read from (file NAME) when TASKMANAGER_SECRET_NAME is not set',
    ).env('TASKCONSUMER_SECRETS_DIR'),
  )
  .addOption(logLevelOption())
  .addOption(logFormatOption())
  .addOption(metricsPortOption())
  .addOption(metricsHostOption())
  .addOption(otelEndpointOption());
for (const o of workProcessorCliOptions()) program.addOption(o);
program.action(async (opts: RunOpts) => run({ ...opts, topic: opts.topic ?? [] }));

function kafkaFor(opts: KafkaCliOptions & { logLevel: string; logFormat: string }): Promise<KafkaClient> {
  const logger = loggerFromOptions(opts, { component: 'taskconsumer' });
  return connectKafka(opts, logger, `taskconsumer-dlq-${process.pid}`);
}

interface DlqOpts {
  brokers?: string;
  kafkaConfig?: string;
  topic: string;
  all?: boolean;
  logLevel: string;
  logFormat: string;
}

const dlq = program
  .command('dlq')
  .description("inspect and replay a task topic's dead-letter queue (<topic>.dlq)");
dlq
  .command('list')
  .description('the tasks in the DLQ, with reason, attempts and origin (replayed ones with --all)')
  .addOption(brokersOption())
  .addOption(kafkaConfigOption())
  .requiredOption('-t, --topic <topic>', 'task topic whose DLQ to read')
  .option('--all', 'also show tasks already replayed')
  .option('--json', 'one JSON object per line')
  .addOption(logLevelOption().default('warn'))
  .addOption(logFormatOption())
  .action(async (opts: DlqOpts & { json?: boolean }) => {
    const entries = await listDlq(await kafkaFor(opts), opts.topic);
    if (opts.json) {
      for (const e of entries.filter((x) => opts.all || !x.replayedBy)) {
        const { record: _record, ...rest } = e;
        process.stdout.write(`${JSON.stringify(rest)}\n`);
      }
    } else process.stdout.write(`${formatDlq(opts.topic, entries, opts.all ?? false)}\n`);
  });
dlq
  .command('replay')
  .description('re-publish DLQ tasks to their original topic (recorded as REPLAYED events and DLQ markers)')
  .addOption(brokersOption())
  .addOption(kafkaConfigOption())
  .requiredOption('-t, --topic <topic>', 'task topic whose DLQ to replay')
  .option('--task-id <id>', 'the task with this taskId')
  .option('--offset <partition@offset>', 'the DLQ record at this position (for records without a taskId)')
  .option('--all', 'every task still waiting in the DLQ')
  .addOption(logLevelOption().default('warn'))
  .addOption(logFormatOption())
  .action(async (opts: DlqOpts & { taskId?: string; offset?: string }) => {
    const chosen = [opts.taskId, opts.offset, opts.all].filter((x) => x !== undefined).length;
    if (chosen !== 1)
      throw new AppError('USAGE', 'dlq replay: give exactly one of --task-id ID, --offset P@O, --all');
    const selector = opts.all
      ? { all: true as const }
      : opts.taskId
        ? { taskId: opts.taskId }
        : { position: opts.offset ?? '' };
    const { replayed, refused } = await replayDlq(await kafkaFor(opts), opts.topic, selector);
    for (const e of replayed) {
      process.stdout.write(`replayed ${e.taskId ?? `${e.partition}@${e.offset}`} -> ${opts.topic}\n`);
    }
    for (const r of refused) process.stderr.write(`taskconsumer: ${r.line}\n`);
    process.stdout.write(
      `${replayed.length} task(s) replayed from ${opts.topic}.dlq${refused.length > 0 ? `, ${refused.length} refused` : ''}\n`,
    );
    if ((replayed.length === 0 && !opts.all) || refused.length > 0) exitAfterFlush(1);
  });

program
  .command('cancel')
  .description(
    `cancel a task: one waiting never starts, one running has its signal aborted (a command is killed); it ends CANCELLED. Through ${CANCELS_TOPIC}, so it reaches whichever consumer holds the task, now or later`,
  )
  .argument('<taskId>', 'the task to cancel (<schedule id>@<instant>, as events and the dashboard show it)')
  .addOption(brokersOption())
  .addOption(kafkaConfigOption())
  .option('--reason <text>', `why (kept in its CANCELLED event; at most ${MAX_CANCEL_REASON} characters)`)
  .addOption(logLevelOption().default('warn'))
  .addOption(logFormatOption())
  .action(async (taskId: string, opts: DlqOpts & { reason?: string }) => {
    if (taskId.trim() === '') throw new AppError('USAGE', 'cancel: the taskId is empty');
    const kafka = await kafkaFor(opts);
    const req = cancelRequest(taskId, new Date(), 'operator', opts.reason ? { reason: opts.reason } : {});
    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    try {
      await producer.send([cancelRecord(req)]);
    } finally {
      await producer.disconnect();
    }
    process.stdout.write(
      `cancel of ${taskId} requested: if it has not ended, the consumer holding it ends it CANCELLED (see its events)\n`,
    );
  });

program
  .command('logs')
  .description(
    `print the log of a task's run from ${LOGS_TOPIC}: what its processor logged (info and above) and its output, secrets redacted; the last 1,000 lines or 64 KiB of the run, with what was dropped counted`,
  )
  .argument('<taskId>', 'the run (<schedule id>@<instant>, as events and the dashboard show it)')
  .addOption(brokersOption())
  .addOption(kafkaConfigOption())
  .option('-f, --follow', 'then print its new lines as they are written, until interrupted (Ctrl-C)')
  .addOption(logLevelOption().default('warn'))
  .addOption(logFormatOption())
  .action(async (taskId: string, opts: DlqOpts & { follow?: boolean }) => {
    if (taskId.trim() === '') throw new AppError('USAGE', 'logs: the taskId is empty');
    const stop = new AbortController();
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stop.abort());
    await runLogs(await kafkaFor(opts), taskId, {
      follow: opts.follow ?? false,
      write: (text) => process.stdout.write(text),
      stop: stop.signal,
    });
    exitAfterFlush(0);
  });

program
  .command('status')
  .description("the group's members, their partitions, and the lag of each partition")
  .addOption(brokersOption())
  .addOption(kafkaConfigOption())
  .addOption(
    new Option('-g, --group <id>', 'consumer group').env('TASKCONSUMER_GROUP').default('taskConsumer'),
  )
  .addOption(
    new Option('-t, --topic <topic>', 'task topic (repeatable; default taskTopic)')
      .argParser(commaList)
      .env('TASKCONSUMER_TOPICS'),
  )
  .option('--json', 'print JSON')
  .addOption(logLevelOption().default('warn'))
  .addOption(logFormatOption())
  .action(async (opts: DlqOpts & { group: string; topic?: string | string[]; json?: boolean }) => {
    const topics = Array.isArray(opts.topic) ? opts.topic : ['taskTopic'];
    const { status, lines } = await consumerGroupStatus(await kafkaFor(opts), opts.group, topics);
    process.stdout.write(
      opts.json
        ? `${JSON.stringify(status, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`
        : `${lines.join('\n')}\n`,
    );
  });

await runProgram(program);
