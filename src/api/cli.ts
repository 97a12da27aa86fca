#!/usr/bin/env node
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, Option } from 'commander';
import { AppError } from '../shared/errors.js';
import { parseDuration } from '../shared/duration.js';
import { exitAfterFlush } from '../shared/lifecycle.js';
import { cliProgram, runProgram } from '../shared/cli-runner.js';
import {
  brokersOption,
  commaList,
  kafkaConfigOption,
  logFormatOption,
  logLevelOption,
  loggerFromOptions,
  metricsHostOption,
  metricsPortOption,
  portNumber,
  positiveInt,
} from '../shared/cli-common.js';
import type { KafkaCliOptions } from '../shared/cli-common.js';
import { taskTopicProblem } from '../shared/config/topic-name.js';
import { isValidTimeZone } from '../shared/cron.js';
import { DEFAULT_API_GROUP } from '../shared/tasks/definition.js';
import { ROLES } from './auth/roles.js';
import type { Role } from './auth/roles.js';
import { callApi, callToken, TOKEN_ENV } from './call-command.js';
import type { CallOptions } from './call-command.js';
import { serve } from './serve.js';
import type { ServeOptions } from './serve.js';
import { DEFAULT_MAX_PAYLOAD_BYTES } from './task-input.js';
import { DEFAULT_AUDIT_KEEP } from './audit-view.js';
import { allowedTaskTopics, DEFAULT_TASK_TOPICS } from './task-topics.js';
import { firstLineOfStdin, formatUsers, readPassword, withUsers } from './users-command.js';
import { otelEndpointOption } from '../shared/tracing.js';

type RunOpts = Omit<ServeOptions, 'jwtPreviousKeyFile' | 'taskTopics'> & {
  jwtPreviousKeyFile?: string[];
  taskTopics?: string[];
  logLevel: string;
  logFormat: string;
};

async function run(opts: RunOpts): Promise<void> {
  const logger = loggerFromOptions(opts, { component: 'taskapi' });
  const topicProblem = taskTopicProblem(opts.topic);
  if (topicProblem) throw new AppError('USAGE', `--topic ${JSON.stringify(opts.topic)}: ${topicProblem}`);
  const taskTopics = allowedTaskTopics(opts.taskTopics, opts.topic);
  if (!isValidTimeZone(opts.timeZone))
    throw new AppError('USAGE', `--time-zone ${JSON.stringify(opts.timeZone)} is not an IANA time zone`);
  await serve({ ...opts, taskTopics, jwtPreviousKeyFile: opts.jwtPreviousKeyFile ?? [] }, logger);
}

function durationArg(name: string): (v: string) => number {
  return (v) => {
    const ms = parseDuration(v);
    if (ms === undefined || ms <= 0)
      throw new InvalidArgumentError(`${name} must be a duration like 24h or 90m (got ${JSON.stringify(v)})`);
    return ms;
  };
}

/** `--flag <duration>` in ms, with its default written as a duration. */
function durationOption(flag: string, description: string, byDefault: string): Option {
  return new Option(`${flag} <duration>`, description)
    .argParser(durationArg(flag))
    .default(durationArg(flag)(byDefault), byDefault);
}

function roleArg(v: string): Role {
  if (!(ROLES as readonly string[]).includes(v))
    throw new InvalidArgumentError(`a role is one of ${ROLES.join(', ')} (got ${JSON.stringify(v)})`);
  return v as Role;
}

function trustProxyArg(v: string): boolean | number | string {
  if (v === 'true' || v === 'false') return v === 'true';
  if (/^\d+$/.test(v)) return Number(v);
  return v;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

const program = cliProgram(
  'taskapi',
  'HTTP API for tasks stored in Kafka (taskmanager.tasks) and fired by taskscheduler.',
).enablePositionalOptions();

program
  .command('run', { isDefault: true })
  .description('serve the HTTP API (the default command)')
  .addOption(brokersOption())
  .addOption(kafkaConfigOption())
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
  .addOption(
    // No commander default: it would be the start of the list the values are added to.
    new Option(
      '--task-topics <topics>',
      `the only topics tasks may go to, besides --topic (comma-separated, repeatable; default ${DEFAULT_TASK_TOPICS.join(',')}, as scripts/create-topics.sh)`,
    )
      .env('TASKAPI_TASK_TOPICS')
      .argParser(commaList),
  )
  .addOption(new Option('--time-zone <zone>', 'zone of tasks created without one').default('UTC'))
  .addOption(
    new Option('--body-limit <bytes>', 'largest request body (413 above)')
      .argParser(positiveInt('--body-limit'))
      .default(512 * 1024),
  )
  .addOption(
    new Option('--max-payload <bytes>', 'largest task payload, bytes of its JSON (413 above)')
      .argParser(positiveInt('--max-payload'))
      .default(DEFAULT_MAX_PAYLOAD_BYTES),
  )
  .addOption(
    durationOption('--request-timeout', 'time a client has to send a whole request (408 after)', '30s'),
  )
  .addOption(
    durationOption('--idle-timeout', 'a connection where nothing moves for this long is closed', '60s'),
  )
  .addOption(
    durationOption('--keep-alive-timeout', 'an idle keep-alive connection is closed after this', '72s'),
  )
  .addOption(
    new Option('--history <duration>', 'how far back run history is read from taskmanager.events at start')
      .argParser(durationArg('--history'))
      .default(24 * 3600_000, '24h'),
  )
  .addOption(
    new Option(
      '--keep-finished <duration>',
      'a one-shot task is removed this long after its run ended (FINISHED, or dead-lettered); a task may set its own keepFinished',
    )
      .argParser(durationArg('--keep-finished'))
      .default(24 * 3600_000, '24h'),
  )
  .addOption(
    new Option(
      '--data-dir <dir>',
      'where taskapi keeps its store of task definitions (one folder per Kafka cluster, rebuilt from taskmanager.tasks when missing) and a generated JWT signing key',
    )
      .env('TASKAPI_DATA_DIR')
      .default(join(homedir(), '.taskmanager')),
  )
  .addOption(
    new Option(
      '--jwt-key-file <file>',
      'Ed25519 private key (PEM) that signs access tokens; instances behind one address share it',
    ).env('TASKAPI_JWT_KEY_FILE'),
  )
  .addOption(
    new Option(
      '--jwt-previous-key-file <file>',
      'a key rotated out: tokens it signed stay valid until they expire (repeatable)',
    ).argParser(collect),
  )
  .addOption(
    new Option('--token-ttl <duration>', 'lifetime of access tokens')
      .argParser(durationArg('--token-ttl'))
      .default(15 * 60_000, '15m'),
  )
  .addOption(
    new Option(
      '--allow-signup',
      'let anyone create a user (role viewer) with POST /api/v1/users/signup',
    ).default(false),
  )
  .addOption(
    new Option(
      '--trust-proxy <value>',
      'behind a load balancer: true, a hop count, or its addresses (CIDR, comma-separated); the client address then comes from X-Forwarded-For (login limits)',
    )
      .env('TASKAPI_TRUST_PROXY')
      .argParser(trustProxyArg)
      .default(false),
  )
  .addOption(
    new Option(
      '--audit-keep <count>',
      'newest entries of taskmanager.audit kept in memory for GET /api/v1/audit and the dashboard',
    )
      .env('TASKAPI_AUDIT_KEEP')
      .argParser(positiveInt('--audit-keep'))
      .default(DEFAULT_AUDIT_KEEP),
  )
  .addOption(logLevelOption())
  .addOption(logFormatOption())
  .addOption(metricsPortOption())
  .addOption(metricsHostOption())
  .addOption(otelEndpointOption())
  .action(run);

const users = program
  .command('users')
  .description('manage users straight in taskmanager.users (for operators at the shell; no token needed)');

users
  .command('add <name>')
  .description('add a user; the password comes from TASKAPI_PASSWORD or the first line of stdin')
  .addOption(
    new Option('-r, --role <role>', 'viewer, operator or admin').argParser(roleArg).default('viewer'),
  )
  .addOption(brokersOption())
  .addOption(kafkaConfigOption())
  .action(async (name: string, opts: KafkaCliOptions & { role: Role }) => {
    const password = await readPassword();
    await withUsers(opts, (u, by) => u.addUser(name, password, opts.role, by));
    process.stdout.write(`added ${name} (${opts.role})\n`);
  });

users
  .command('list')
  .description('users and their roles')
  .addOption(brokersOption())
  .addOption(kafkaConfigOption())
  .option('--json', 'print JSON')
  .action(async (opts: KafkaCliOptions & { json?: boolean }) => {
    const out = await withUsers(opts, async (u) =>
      opts.json
        ? JSON.stringify(
            u.view.allUsers().map(({ passwordHash: _hidden, ...rest }) => rest),
            null,
            2,
          )
        : formatUsers(u),
    );
    process.stdout.write(`${out}\n`);
  });

users
  .command('set-role <name> <role>')
  .description('change a user’s role (applies to their tokens at once)')
  .addOption(brokersOption())
  .addOption(kafkaConfigOption())
  .action(async (name: string, role: string, opts: KafkaCliOptions) => {
    const r = roleArg(role);
    await withUsers(opts, (u, by) => u.changeUser(name, { role: r }, by));
    process.stdout.write(`${name} is now ${r}\n`);
  });

users
  .command('remove <name>')
  .description('remove a user and revoke their API tokens')
  .addOption(brokersOption())
  .addOption(kafkaConfigOption())
  .action(async (name: string, opts: KafkaCliOptions) => {
    await withUsers(opts, (u, by) => u.removeUser(name, by));
    process.stdout.write(`removed ${name}\n`);
  });

program
  .command('call <method> <path>')
  .description('one request to a running taskapi, e.g. `taskapi call GET /api/v1/tasks` (prints the answer)')
  .addOption(
    new Option('--url <url>', 'where taskapi listens').env('TASKAPI_URL').default('http://127.0.0.1:8080'),
  )
  .option('--token-stdin', `read the bearer token from the first line of stdin (default: env ${TOKEN_ENV})`)
  // Refused with the reason (see callToken); hidden, so nobody is taught it.
  .addOption(new Option('--token <token>').hideHelp())
  .option('-d, --data <json>', 'JSON body')
  .option('--if-match <etag>', 'the ETag a change is based on')
  .action(
    async (
      method: string,
      path: string,
      opts: Omit<CallOptions, 'token'> & { token?: string; tokenStdin?: boolean },
    ) => {
      const { tokenStdin, token: flag, ...rest } = opts;
      const token = await callToken({ tokenStdin, token: flag }, process.env, async () => {
        if (process.stdin.isTTY)
          throw new AppError(
            'USAGE',
            `--token-stdin: pipe the token in (echo "$${TOKEN_ENV}" | taskapi call …)`,
          );
        return firstLineOfStdin();
      });
      const code = await callApi(method, path, { ...rest, ...(token ? { token } : {}) });
      if (code !== 0) exitAfterFlush(code);
    },
  );

await runProgram(program);
