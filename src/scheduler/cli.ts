#!/usr/bin/env node
import { basename, extname } from 'node:path';
import { Option } from 'commander';
import type { Command } from 'commander';
import { loadScheduleFile } from '../shared/config/load.js';
import { AppError, ConfigError, errorMessage, formatProblem } from '../shared/errors.js';
import { BACKFILL_DEFAULT_MAX, BACKFILL_MAX_CEILING, rangeProblems } from '../shared/backfill.js';
import type { Logger } from '../shared/logger.js';
import { retryUntilDone } from '../shared/backoff.js';
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
  connectKafka,
  stderrWarnings,
  positiveInt,
} from '../shared/cli-common.js';
import { ControlListener } from './control-listener.js';
import { runBackfill, runEntryCommand, runStatus } from './control-cli.js';
import type { ControlOutput } from './control-cli.js';
import { describeNextFires } from './next-command.js';
import { GroupScheduler } from './group-scheduler.js';
import { ScheduleWatcher } from './schedule-watcher.js';
import { ApiTaskSource } from './api-tasks.js';
import { EntrySources } from './entry-sources.js';
import { CalendarFollower } from './calendar-follower.js';
import { DEFAULT_API_GROUP } from '../shared/tasks/definition.js';
import { createTracing, otelEndpointOption } from '../shared/tracing.js';
import { SCHEDULED_EVENTS_FORMS } from './task-records.js';
import type { ScheduledEventsForm } from './task-records.js';

const DEFAULT_SCHEDULE = 'config/taskscheduler.json';

function scheduleOption(): Option {
  return new Option(
    '-s, --schedule <file>',
    'schedule file (JSON), or "none" to fire only the tasks created over HTTP',
  )
    .env('TASKSCHEDULER_SCHEDULE')
    .default(DEFAULT_SCHEDULE);
}

/** `taskscheduler-<schedule file basename without extension>` */
export function defaultGroup(schedule: string): string {
  return `taskscheduler-${basename(schedule, extname(schedule))}`;
}

async function loadOrExit(file: string): Promise<Awaited<ReturnType<typeof loadScheduleFile>>> {
  try {
    return await loadScheduleFile(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`${formatProblem(p)}\n`);
      process.stderr.write(`${file}: ${err.problems.length} problem(s); nothing started\n`);
      exitAfterFlush(2);
      return new Promise(() => undefined);
    }
    throw err;
  }
}

/** A broker that is down at start-up is retried with capped backoff (0.5 s, 1 s, then 2 s), one line per try. */
function startWithRetry(part: { start(): Promise<void> }, logger: Logger): Promise<void> {
  return retryUntilDone(() => part.start(), {
    backoff: { baseMs: 500, maxMs: 2000 },
    clock: systemClock,
    onFailure: (err, attempt, delay) =>
      logger.error(`cannot start: ${errorMessage(err)}; retrying in ${delay} ms`, { attempt }),
  });
}

interface RunOpts {
  brokers?: string;
  kafkaConfig?: string;
  schedule: string;
  group?: string;
  logLevel: string;
  logFormat: string;
  metricsPort?: number;
  metricsHost: string;
  otelEndpoint?: string;
  scheduledEvents: ScheduledEventsForm;
}

/** `--schedule none`: no file, only the tasks created over HTTP for the group. */
const NO_FILE = 'none';

async function run(opts: RunOpts): Promise<void> {
  const logger = loggerFromOptions(opts, { component: 'taskscheduler' });
  const noFile = opts.schedule === NO_FILE;
  const entries = noFile ? [] : await loadOrExit(opts.schedule);
  const group = opts.group ?? (noFile ? DEFAULT_API_GROUP : defaultGroup(opts.schedule));
  const sources = new EntrySources(logger);
  sources.setFile(entries);
  const tracing = createTracing({ endpoint: opts.otelEndpoint, service: 'taskscheduler', logger });
  const kafka = await connectKafka(opts, logger, `taskscheduler-${process.pid}`);
  // Holds the group's API tasks of the owned state partitions only; loaded before a gained partition is armed.
  const apiTasks = new ApiTaskSource(kafka, group, logger, sources, systemClock, (names) =>
    calendars.book.excludedOf(names),
  );
  // The calendars API tasks name: read before the tasks are; a change arms the tasks naming it again.
  const calendars = new CalendarFollower(kafka, logger, (name) => apiTasks.calendarChanged(name));
  sources.api = apiTasks;
  const ops = new MetricsEndpoint(opts, 'taskscheduler');
  const scheduler = new GroupScheduler({
    kafka,
    entries,
    group,
    clock: systemClock,
    logger,
    definitions: apiTasks,
    tracing,
    scheduledEvents: opts.scheduledEvents,
    ...(ops.registry ? { metricsRegistry: ops.registry } : {}),
  });
  sources.scheduler = scheduler;
  await ops.start(() => scheduler.readiness(), logger);
  const commands = new ControlListener(kafka, scheduler, logger);
  const watcher = noFile
    ? undefined
    : new ScheduleWatcher({
        file: opts.schedule,
        logger,
        onValid: (next) => {
          scheduler.applyEntries(sources.setFile(next));
        },
      });
  installShutdown({
    logger,
    graceful: async () => {
      watcher?.stop();
      await apiTasks.stop();
      await calendars.stop();
      await commands.stop();
      const unsent = await scheduler.stop({ deadlineMs: 10_000 });
      await tracing.shutdown();
      await ops.close();
      return unsent === 0 ? 0 : 1;
    },
  });
  logger.info(
    `${noFile ? 'no schedule file' : `loaded ${opts.schedule}: ${entries.length} entries`}; ` +
      `Kafka ${kafka.describe()}; group ${group}`,
  );
  await startWithRetry(calendars, logger);
  await startWithRetry(apiTasks, logger);
  await startWithRetry(scheduler, logger);
  watcher?.start();
  await startWithRetry(commands, logger);
}

interface ControlOpts {
  brokers?: string;
  kafkaConfig?: string;
  schedule: string;
  group?: string;
  timeoutMs: number;
}

/** Runs a control command against a running group and prints its outcome. */
async function control(
  opts: ControlOpts,
  run: (kafka: KafkaClient, group: string) => Promise<ControlOutput>,
  json = false,
): Promise<void> {
  const kafka = await connectKafka(opts, stderrWarnings, `taskscheduler-cli-${process.pid}`);
  const out = await run(kafka, opts.group ?? defaultGroup(opts.schedule));
  process.stdout.write(
    json && out.json !== undefined ? `${JSON.stringify(out.json, null, 2)}\n` : `${out.lines.join('\n')}\n`,
  );
  exitAfterFlush(out.exitCode);
}

function controlCommand(name: string, description: string, timeoutMs = 15_000): Command {
  return program
    .command(name)
    .description(description)
    .addOption(brokersOption())
    .addOption(kafkaConfigOption())
    .addOption(
      scheduleOption().default(DEFAULT_SCHEDULE, 'config/taskscheduler.json; names the default group'),
    )
    .addOption(
      new Option('-g, --group <name>', 'scheduler group (default taskscheduler-<schedule basename>)').env(
        'TASKSCHEDULER_GROUP',
      ),
    )
    .addOption(
      new Option('--timeout-ms <ms>', 'how long to wait for the answer')
        .argParser(positiveInt('--timeout-ms'))
        .default(timeoutMs),
    );
}

const program = cliProgram(
  'taskscheduler',
  'Publishes a task message to Kafka each time a schedule entry fires.',
);

program
  .command('run', { isDefault: true })
  .description('fire the schedule into Kafka until SIGINT/SIGTERM')
  .addOption(brokersOption())
  .addOption(kafkaConfigOption())
  .addOption(scheduleOption())
  .addOption(
    new Option('-g, --group <name>', 'scheduler group (default taskscheduler-<schedule basename>)').env(
      'TASKSCHEDULER_GROUP',
    ),
  )
  .addOption(logLevelOption())
  .addOption(logFormatOption())
  .addOption(metricsPortOption())
  .addOption(metricsHostOption())
  .addOption(otelEndpointOption())
  .addOption(
    new Option(
      '--scheduled-events <form>',
      "how the fires' SCHEDULED events are written: batched (a record per 1,000 fires of a transaction) or per-task " +
        '(one record per fire: for readers of earlier releases during an upgrade)',
    )
      .choices(SCHEDULED_EVENTS_FORMS)
      .default('batched')
      .env('TASKSCHEDULER_SCHEDULED_EVENTS'),
  )
  .action(run);

for (const [type, what] of [
  ['trigger', 'fire an entry now, with its own taskId, through the instance that owns it'],
  ['pause', 'stop firing an entry until resumed (kept across restarts and failover)'],
  ['resume', 'fire a paused entry again from now (what it missed while paused is not caught up)'],
] as const) {
  controlCommand(type, what)
    .argument('<id>', 'schedule entry Id')
    .action((id: string, opts: ControlOpts) =>
      control(opts, (kafka, group) => runEntryCommand(kafka, type, group, id, opts.timeoutMs)),
    );
}

controlCommand(
  'status',
  "each entry's state, owner, last fire, next fires and last outcome, from the running group",
)
  .argument('[ids...]', 'only these entries')
  .option('--json', 'print JSON')
  .addOption(
    new Option('--events-tail <n>', 'events read per partition of taskmanager.events for the last outcome')
      .argParser(positiveInt('--events-tail'))
      .default(5000),
  )
  .action((ids: string[], opts: ControlOpts & { json?: boolean; eventsTail: number }) =>
    control(
      opts,
      (kafka, group) =>
        runStatus(kafka, group, ids, { timeoutMs: opts.timeoutMs, eventsTail: opts.eventsTail }),
      opts.json === true,
    ),
  );

interface BackfillOpts extends ControlOpts {
  from: string;
  to: string;
  max?: number;
  dryRun?: boolean;
  json?: boolean;
}

controlCommand(
  'backfill',
  'publish each instant of the schedule from --from to --to that has no task yet, oldest first, through the instance that owns the entry',
  60_000,
)
  .argument('<id>', 'schedule entry Id')
  .requiredOption('--from <time>', 'first instant of the range, RFC 3339 (e.g. 2026-12-01T00:00:00Z)')
  .requiredOption('--to <time>', 'last instant of the range, RFC 3339; not in the future')
  .addOption(
    new Option(
      '--max <n>',
      `refuse a range holding more instants than this (at most ${BACKFILL_MAX_CEILING})`,
    )
      .argParser(positiveInt('--max'))
      .default(BACKFILL_DEFAULT_MAX),
  )
  .option('--dry-run', 'list what would be published; publish nothing')
  .option('--json', 'print JSON')
  .action(async (id: string, opts: BackfillOpts) => {
    const range = {
      from: opts.from,
      to: opts.to,
      ...(opts.max === undefined ? {} : { max: opts.max }),
      ...(opts.dryRun ? { dryRun: true } : {}),
    };
    const problem = rangeProblems(range)[0];
    if (problem) throw new AppError('USAGE', `--${problem.field} ${problem.detail}`);
    await control(
      opts,
      (kafka, group) => runBackfill(kafka, group, id, range, opts.timeoutMs),
      opts.json === true,
    );
  });

program
  .command('validate')
  .description('check a schedule file and print every problem (exit 0 valid, 2 invalid); no broker needed')
  .addOption(scheduleOption())
  .action(async (opts: { schedule: string }) => {
    const entries = await loadOrExit(opts.schedule);
    const enabled = entries.filter((e) => e.enabled).length;
    process.stdout.write(`${opts.schedule}: valid, ${entries.length} entries (${enabled} enabled)\n`);
  });

program
  .command('next')
  .description("print each entry's next fire times in its zone and in UTC; no broker needed")
  .addOption(scheduleOption())
  .option('--id <id>', 'only this entry')
  .addOption(
    new Option('-n, --count <n>', 'how many fire times').argParser(positiveInt('--count')).default(5),
  )
  .action(async (opts: { schedule: string; id?: string; count: number }) => {
    const entries = await loadOrExit(opts.schedule);
    const chosen = opts.id === undefined ? entries : entries.filter((e) => e.id === opts.id);
    if (chosen.length === 0) {
      process.stderr.write(`${opts.schedule}: no entry with Id ${JSON.stringify(opts.id)}\n`);
      exitAfterFlush(2);
      return;
    }
    process.stdout.write(`${describeNextFires(chosen, Date.now(), opts.count)}\n`);
  });

await runProgram(program);
