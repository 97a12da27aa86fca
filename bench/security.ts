/**
 * What security costs: the firing benchmark (ours only) and the consumer throughput benchmark run against one
 * broker of `scripts/kafka-local --secure`, over its plaintext listener and over SASL_SSL with SCRAM-SHA-512,
 * interleaved in the same run (plaintext, secured, plaintext, secured, …).
 *
 *   scripts/kafka-local start --secure
 *   npm run bench:security -- [--n 10000] [--window 20] [--tasks 100000] [--runs 2] [--smoke]
 *   env: KAFKA_SECURE_CREDENTIALS (the broker's secure/credentials.json; default the one of the default data dir)
 *
 * The plaintext listener's clients are User:ANONYMOUS: for the run it is granted the benchmark's topics, groups and
 * transactional ids (and the shared topics the scheduler writes), and those ACLs are removed at the end. The
 * secured runs log in as admin (a super user: ACLs are not evaluated for it).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import kafkajs from 'kafkajs';
import type { AclEntry } from 'kafkajs';
import { readKafkaConfig } from '../src/shared/kafka/security.js';
import { rawKafka } from './lib/kafka-bench.js';
import { cell, describeMachine, machineFacts, printTable, writeResults } from './lib/report.js';
import type { Summary } from './lib/report.js';
import { ROOT } from '../test/kit/processes.js';

const run = promisify(execFile);
// kafkajs is CommonJS: its enums come from the default export.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

interface Credentials {
  bootstrap: string;
  plainBootstrap: string;
  users: { admin: { config: string } };
}

interface Mode {
  name: 'plaintext' | 'SASL_SSL+SCRAM-SHA-512';
  env: Record<string, string>;
}

interface FiringRow {
  lagMs: Summary;
  ackLagMs?: Summary;
  cpuPct: number;
  fires: number;
  missed: number;
  dup: number;
}

interface ConsumeResult {
  bestOurs: number;
  bestRaw: number;
  prefill: { perSec: number };
}

interface Row {
  mode: Mode['name'];
  run: number;
  firing: FiringRow;
  consume: ConsumeResult;
}

function params() {
  const { values } = parseArgs({
    options: {
      n: { type: 'string' },
      window: { type: 'string' },
      tasks: { type: 'string' },
      runs: { type: 'string' },
      smoke: { type: 'boolean', default: false },
    },
  });
  const smoke = values.smoke === true;
  const int = (v: string | undefined, d: number) => {
    const n = Number(v ?? d);
    if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive integer, got ${String(v)}`);
    return n;
  };
  return {
    smoke,
    n: int(values.n, smoke ? 300 : 10_000),
    windowS: int(values.window, smoke ? 3 : 20),
    tasks: int(values.tasks, smoke ? 3000 : 100_000),
    runs: int(values.runs, smoke ? 1 : 2),
    credentials:
      process.env['KAFKA_SECURE_CREDENTIALS'] ??
      join(ROOT, '.kafka-local/data-9092-secure/secure/credentials.json'),
  };
}

/** The ACLs that let User:ANONYMOUS (the plaintext listener) run the benchmarks. */
function anonymousAcls(): AclEntry[] {
  const allow = (resourceType: AclEntry['resourceType'], resourceName: string): AclEntry => ({
    resourceType,
    resourceName,
    resourcePatternType: ResourcePatternTypes.PREFIXED,
    principal: 'User:ANONYMOUS',
    host: '*',
    operation: AclOperationTypes.ALL,
    permissionType: AclPermissionTypes.ALLOW,
  });
  return [
    allow(AclResourceTypes.TOPIC, 'bench'),
    allow(AclResourceTypes.TOPIC, 'taskmanager.'),
    allow(AclResourceTypes.GROUP, 'bench'),
    allow(AclResourceTypes.GROUP, 'taskmanager-'),
    allow(AclResourceTypes.TRANSACTIONAL_ID, 'bench'),
  ];
}

/** ACLs reach the brokers' authorizers through the metadata log, a moment after createAcls answers. */
async function untilAnonymousMayRead(brokers: string[]): Promise<void> {
  const plain = rawKafka(brokers, 'bench-security-plain').admin();
  await plain.connect();
  try {
    for (let i = 0; ; i++) {
      try {
        await plain.fetchTopicMetadata({ topics: ['taskmanager.scheduler-state'] });
        return;
      } catch (err) {
        if (i >= 100) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    await plain.disconnect();
  }
}

/** Runs a built benchmark with the mode's environment and returns its results file, parsed. */
async function bench<T>(script: string, args: string[], mode: Mode): Promise<T> {
  const { stdout } = await run(process.execPath, [join(ROOT, 'dist/bench', script), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...mode.env },
    maxBuffer: 64 * 1024 * 1024,
  });
  process.stdout.write(`${stdout.trimEnd().replace(/^/gm, `  [${mode.name}] `)}\n`);
  const file = /^results: (.+)$/m.exec(stdout)?.[1];
  if (!file) throw new Error(`${script} printed no results file`);
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

async function main(): Promise<void> {
  const p = params();
  if (!existsSync(p.credentials))
    throw new Error(
      `${p.credentials} not found: start a secured broker with scripts/kafka-local start --secure`,
    );
  const creds = JSON.parse(readFileSync(p.credentials, 'utf8')) as Credentials;
  const adminConfig = creds.users.admin.config;
  const admin = rawKafka(creds.bootstrap.split(','), 'bench-security', readKafkaConfig(adminConfig)).admin();
  await admin.connect();
  const machine = machineFacts(creds.bootstrap.split(','));
  console.log(
    `security: firing ${p.n} schedules (spread over the minute, ${p.windowS} s window) and consuming ${p.tasks} tasks, ` +
      `${p.runs} run(s) per mode; ${describeMachine(machine)}`,
  );
  await run('bash', [join(ROOT, 'scripts/create-topics.sh'), '--bootstrap-server', creds.bootstrap], {
    cwd: ROOT,
    env: { ...process.env, KAFKA_CONFIG: adminConfig },
  });
  const acls = anonymousAcls();
  await admin.createAcls({ acl: acls });
  await untilAnonymousMayRead(creds.plainBootstrap.split(','));
  const modes: Mode[] = [
    { name: 'plaintext', env: { KAFKA_BROKERS: creds.plainBootstrap, KAFKA_CONFIG: '' } },
    { name: 'SASL_SSL+SCRAM-SHA-512', env: { KAFKA_BROKERS: creds.bootstrap, KAFKA_CONFIG: adminConfig } },
  ];
  const rows: Row[] = [];
  try {
    for (let r = 1; r <= p.runs; r++) {
      for (const mode of modes) {
        const firing = await bench<{ rows: FiringRow[] }>(
          'firing.js',
          ['--only', 'ours', '--n', String(p.n), '--window', String(p.windowS)],
          mode,
        );
        const consume = await bench<{ consume: ConsumeResult }>(
          'throughput.js',
          ['--parts', 'consume', '--n', String(p.tasks), ...(p.smoke ? ['--smoke'] : [])],
          mode,
        );
        rows.push({ mode: mode.name, run: r, firing: firing.rows[0]!, consume: consume.consume });
      }
    }
  } finally {
    await admin.deleteAcls({ filters: acls });
    await admin.disconnect();
  }
  console.log('');
  printTable(
    [
      'mode',
      'run',
      'fire lag p50',
      'p99',
      'max',
      'ack lag p50',
      'p99',
      'missed',
      'dup',
      'CPU %',
      'consume ours/s',
      'raw kafkajs/s',
      'prefill/s',
    ],
    rows.map((x) => [
      x.mode,
      String(x.run),
      cell(x.firing.lagMs.p50),
      cell(x.firing.lagMs.p99),
      cell(x.firing.lagMs.max),
      cell(x.firing.ackLagMs?.p50),
      cell(x.firing.ackLagMs?.p99),
      String(x.firing.missed),
      String(x.firing.dup),
      cell(x.firing.cpuPct),
      cell(x.consume.bestOurs),
      cell(x.consume.bestRaw),
      cell(x.consume.prefill.perSec),
    ]),
  );
  const best = (mode: Mode['name'], f: (x: Row) => number) =>
    Math.max(...rows.filter((x) => x.mode === mode).map(f));
  const consumeRatio =
    best('SASL_SSL+SCRAM-SHA-512', (x) => x.consume.bestOurs) / best('plaintext', (x) => x.consume.bestOurs);
  console.log(
    `\nour consumer over SASL_SSL: ${cell(consumeRatio * 100)} % of its plaintext rate (best runs)`,
  );
  writeResults('security', { params: p, machine, rows, consumeRatio });
  if (rows.some((x) => x.firing.missed > 0 || x.firing.dup > 0)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(`bench:security: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
