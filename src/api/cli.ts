#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { parseDuration } from '../shared/duration.js';
import { systemClock } from '../shared/clock.js';
import { AppError, errorMessage } from '../shared/errors.js';
import { KafkaClient } from '../shared/kafka/index.js';
import { exitAfterFlush, installShutdown } from '../shared/lifecycle.js';
import {
  brokersOption,
  logFormatOption,
  logLevelOption,
  loggerFromOptions,
  metricsHostOption,
  metricsPortOption,
  normalizeGoFlags,
  parseBrokers,
  portNumber,
  positiveInt,
} from '../shared/cli-common.js';
import { topicNameProblem } from '../shared/config/topic-name.js';
import { isValidTimeZone } from '../shared/cron.js';
import { processRegistry } from '../shared/ops/registry.js';
import { startOpsServer } from '../shared/ops/server.js';
import type { OpsServer } from '../shared/ops/server.js';
import { DEFAULT_API_GROUP } from '../shared/tasks/definition.js';
import { apiMetrics } from './metrics.js';
import { buildServer } from './server.js';
import { TaskService } from './task-service.js';
import { TaskStore } from './task-store.js';

interface RunOpts {
  brokers: string;
  port: number;
  host: string;
  group: string;
  topic: string;
  timeZone: string;
  bodyLimit: number;
  history: number;
  logLevel: string;
  logFormat: string;
  metricsPort?: number;
  metricsHost: string;
}

function packageVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json'])
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      // not at this depth (dist/src/api or src/api)
    }
  return '0.0.0';
}

async function run(opts: RunOpts): Promise<void> {
  const logger = loggerFromOptions(opts, { component: 'taskapi' });
  const topicProblem = topicNameProblem(opts.topic);
  if (topicProblem) throw new AppError('USAGE', `--topic ${JSON.stringify(opts.topic)}: ${topicProblem}`);
  if (!isValidTimeZone(opts.timeZone))
    throw new AppError('USAGE', `--time-zone ${JSON.stringify(opts.timeZone)} is not an IANA time zone`);
  const kafka = new KafkaClient({
    brokers: parseBrokers(opts.brokers),
    logger,
    clientId: `taskapi-${process.pid}`,
  });
  const store = new TaskStore({ kafka, logger, clock: systemClock, historyMs: opts.history });
  await startWithRetry(logger, () => store.start());
  const service = new TaskService({
    store,
    clock: systemClock,
    defaults: { topic: opts.topic, group: opts.group, timeZone: opts.timeZone },
  });
  const health = { health: () => store.health(), tasks: () => store.view.size };
  const registry = opts.metricsPort === undefined ? undefined : processRegistry('taskapi');
  const onResponse = registry
    ? apiMetrics(registry, { tasks: health.tasks, ready: () => store.health().ready })
    : undefined;
  const app = await buildServer({
    service,
    health,
    logger,
    bodyLimit: opts.bodyLimit,
    version: packageVersion(),
    ...(onResponse ? { onResponse } : {}),
  });
  let ops: OpsServer | undefined;
  if (registry && opts.metricsPort !== undefined)
    ops = await startOpsServer({
      port: opts.metricsPort,
      host: opts.metricsHost,
      registry,
      readiness: () => {
        const h = store.health();
        return { ready: h.ready, reason: h.reason ?? 'ready' };
      },
      logger,
    });
  installShutdown({
    logger,
    graceful: async () => {
      await app.close();
      await store.stop();
      await ops?.close();
      return 0;
    },
  });
  const address = await app.listen({ port: opts.port, host: opts.host });
  logger.info(
    `taskapi listening on ${address}/api/v1/tasks (OpenAPI: ${address}/api/openapi.json); new tasks go to group ${opts.group}, topic ${opts.topic}`,
  );
}

/** Kafka may be starting too (compose, CI): keep trying, saying why, until it answers. */
async function startWithRetry(
  logger: ReturnType<typeof loggerFromOptions>,
  start: () => Promise<void>,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (/does not exist/.test(errorMessage(err))) throw new AppError('USAGE', errorMessage(err));
      const waitMs = Math.min(5000, 500 * attempt);
      logger.warn(`cannot start yet (${errorMessage(err)}); retrying in ${waitMs} ms`);
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }
}

function durationArg(name: string): (v: string) => number {
  return (v) => {
    const ms = parseDuration(v);
    if (ms === undefined || ms <= 0)
      throw new InvalidArgumentError(`${name} must be a duration like 24h or 90m (got ${JSON.stringify(v)})`);
    return ms;
  };
}

const program = new Command()
  .name('taskapi')
  .description('HTTP API for tasks stored in Kafka (taskmanager.tasks) and fired by taskscheduler.')
  .showHelpAfterError()
  .exitOverride()
  .addOption(brokersOption())
  .addOption(
    new Option('-p, --port <port>', 'HTTP port').env('PORT').argParser(portNumber('--port')).default(8080),
  )
  .addOption(new Option('--host <address>', 'address to listen on').env('HOST').default('127.0.0.1'))
  .addOption(
    new Option('-g, --group <id>', 'scheduler group that fires tasks created without one')
      .env('TASKAPI_GROUP')
      .default(DEFAULT_API_GROUP),
  )
  .addOption(
    new Option('-t, --topic <topic>', 'task topic of tasks created without one')
      .env('TASKAPI_TOPIC')
      .default('taskTopic'),
  )
  .addOption(new Option('--time-zone <zone>', 'zone of tasks created without one').default('UTC'))
  .addOption(
    new Option('--body-limit <bytes>', 'largest request body (413 above)')
      .argParser(positiveInt('--body-limit'))
      .default(512 * 1024),
  )
  .addOption(
    new Option('--history <duration>', 'how far back run history is read from taskmanager.events at start')
      .argParser(durationArg('--history'))
      .default(24 * 3600_000, '24h'),
  )
  .addOption(logLevelOption())
  .addOption(logFormatOption())
  .addOption(metricsPortOption())
  .addOption(metricsHostOption())
  .action(run);

try {
  await program.parseAsync(normalizeGoFlags(process.argv.slice(2)), { from: 'user' });
} catch (err) {
  if (err instanceof CommanderError) exitAfterFlush(err.exitCode === 0 ? 0 : 2);
  else {
    process.stderr.write(`taskapi: ${errorMessage(err)}\n`);
    exitAfterFlush(err instanceof AppError && err.code === 'USAGE' ? 2 : 1);
  }
}
