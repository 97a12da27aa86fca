/**
 * Throughput benchmark (issue "Benchmarks", item 4), three parts, each against fresh topics:
 *
 *  consume  N task messages pre-filled on a topic, read by a plain kafkajs consumer (JSON.parse, resolve, commit)
 *           and by our TaskConsumer (NoopProcessor), each in a new group, and the peer (issue 25): the same N task
 *           messages as BullMQ jobs drained by a BullMQ Worker (same concurrency, no-op processor) from a Redis the
 *           benchmark starts; interleaved raw, ours, BullMQ, raw, ours, BullMQ; the best of each, the ratio
 *           ours/raw (target ≥ 40 %) and ours against BullMQ. The peer needs `redis-server` (installed with apt as
 *           root when missing; else the row says why it was skipped) and is off in --smoke.
 *  e2e      our scheduler (the built `taskscheduler` CLI, its own process) with S schedules `* * * * * *` and our
 *           TaskConsumer (this process) on one topic: tasks published and processed per second over a window
 *           (target ≥ 25,000/s processed).
 *  broker   the broker's limit for one producer: Kafka's own ProducerPerformance (the jars the local broker runs
 *           from) beside a plain kafkajs producer, same records, same size, acks=all.
 *
 *   npm run bench:throughput -- [--n 200000] [--partitions 6] [--keys 40000] [--concurrency 10]
 *        [--schedules 40000] [--window 20] [--perf-n 1000000] [--parts consume,e2e,broker] [--smoke]
 *        [--peers | --no-peers] (the BullMQ peer of consume; default on, off with --smoke)
 *   env: BENCH_TOPIC (prefix of the topics made; default bench-throughput-<random>), KAFKA_BROKERS, KAFKA_HOME,
 *        KAFKA_VERSION, BENCH_LOG_LEVEL (our consumer's log level; default warn), CPU_PROF_FOR=taskscheduler
 *        (and CPU_PROF_DIR): a CPU profile of the scheduler
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ProcessorRegistry } from '../src/processors/registry.js';
import type { RawScheduleEntry } from '../src/shared/config/schema.js';
import { processCpuMs } from './lib/child-cpu.js';
import {
  prefillRecords,
  prefillTasks,
  produceAll,
  rawConsume,
  rawKafka,
  scanTopic,
} from './lib/kafka-bench.js';
import { OwnRedis } from './lib/own-redis.js';
import { startOurConsumer } from './lib/our-consumer.js';
import { findProducerPerf, runProducerPerf } from './lib/producer-perf.js';
import type { PerfResult } from './lib/producer-perf.js';
import {
  benchBrokers,
  benchConnection,
  cell,
  cpuPercent,
  describeMachine,
  machineFacts,
  printTable,
  summarize,
  versionOf,
  writeResults,
} from './lib/report.js';
import type { Summary } from './lib/report.js';
import { sleep, within } from '../test/kit/wait.js';
import { profiling, ROOT } from '../test/kit/processes.js';
import { createTaskTopics, deleteGroups, deleteTopics } from '../test/kit/kafka.js';

const PARTS = ['consume', 'e2e', 'broker'] as const;
type Part = (typeof PARTS)[number];

interface Params {
  n: number;
  partitions: number;
  keys: number;
  concurrency: number;
  schedules: number;
  windowS: number;
  perfN: number;
  recordSize: number;
  parts: Part[];
  smoke: boolean;
  /** Run the BullMQ peer in consume. */
  peers: boolean;
  brokers: string[];
  topic: string;
}

function parseParams(): Params {
  const { values } = parseArgs({
    options: {
      n: { type: 'string' },
      partitions: { type: 'string' },
      keys: { type: 'string' },
      concurrency: { type: 'string' },
      schedules: { type: 'string' },
      window: { type: 'string' },
      'perf-n': { type: 'string' },
      parts: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      peers: { type: 'boolean' },
    },
    allowNegative: true,
  });
  const smoke = values.smoke === true;
  const int = (name: string, v: string | undefined, dflt: number): number => {
    const x = Number(v ?? dflt);
    if (!Number.isInteger(x) || x < 1) throw new Error(`--${name} must be a positive integer (got ${v})`);
    return x;
  };
  const parts = (values.parts ?? PARTS.join(',')).split(',').map((s) => s.trim());
  for (const part of parts) {
    if (!(PARTS as readonly string[]).includes(part))
      throw new Error(`--parts: unknown part ${JSON.stringify(part)}; use ${PARTS.join(', ')}`);
  }
  return {
    n: int('n', values.n, smoke ? 3000 : 200_000),
    partitions: int('partitions', values.partitions, 6),
    keys: int('keys', values.keys, smoke ? 300 : 40_000),
    concurrency: int('concurrency', values.concurrency, 10),
    schedules: int('schedules', values.schedules, smoke ? 300 : 40_000),
    windowS: int('window', values.window, smoke ? 2 : 20),
    perfN: int('perf-n', values['perf-n'], smoke ? 5000 : 1_000_000),
    recordSize: 300,
    parts: parts as Part[],
    smoke,
    peers: values.peers ?? !smoke,
    brokers: benchBrokers(),
    topic: process.env['BENCH_TOPIC'] ?? `bench-throughput-${randomBytes(3).toString('hex')}`,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// consume: raw kafkajs vs our TaskConsumer on the same pre-filled topic, and BullMQ on the same tasks in Redis

type ConsumerKind = 'raw' | 'ours' | 'bullmq';

interface ConsumeRow {
  consumer: string;
  kind: ConsumerKind;
  run: number;
  tasks: number;
  joinMs: number;
  /** First task in hand (raw) or finished (ours, BullMQ) to the last. */
  ms: number;
  totalMs: number;
  perSec: number;
  cpuPct: number;
}

/** The BullMQ peer: what it ran against, or why it did not run. */
interface BullmqPeer {
  skipped?: string;
  bullmq?: string;
  redis?: string;
  /** Jobs added with it (see bench/lib/bullmq-peer.ts). */
  removeOnComplete?: boolean;
  /** Per run: adding the jobs (not timed in the rate), and redis-server's CPU while the worker drained them. */
  runs: { run: number; addMs: number; redisCpuPct: number | undefined }[];
}

interface ConsumeResult {
  prefill: { records: number; ms: number; perSec: number };
  rows: ConsumeRow[];
  bestRaw: number;
  bestOurs: number;
  ratio: number;
  /** Absent when the peer did not run. */
  bestBullmq?: number;
  /** Best ours / best BullMQ. */
  oursVsBullmq?: number;
  peer?: BullmqPeer;
  failures: string[];
}

/** Generous: a consumer far slower than expected still finishes, and a stuck one fails the run. */
const consumeTimeoutMs = (n: number): number => Math.max(60_000, n * 2);

async function runRaw(p: Params, topic: string, run: number, groups: string[]): Promise<ConsumeRow> {
  const group = `bench-tp-raw-${randomUUID()}`;
  groups.push(group);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const s = await within(
    rawConsume(rawKafka(p.brokers, 'bench-raw', benchConnection()), topic, group, p.n, p.partitions),
    consumeTimeoutMs(p.n),
    () => `raw consumer did not read ${p.n} records`,
  );
  return {
    consumer: `kafkajs ${versionOf('kafkajs')} raw`,
    kind: 'raw',
    run,
    tasks: s.records,
    joinMs: s.joinMs,
    ms: s.ms,
    totalMs: s.totalMs,
    perSec: (s.records / s.ms) * 1000,
    cpuPct: cpuPercent(cpu0, performance.now() - t0),
  };
}

async function runOurs(
  p: Params,
  topic: string,
  run: number,
  groups: string[],
  failures: string[],
): Promise<ConsumeRow> {
  const group = `bench-tp-ours-${randomUUID()}`;
  groups.push(group);
  let finished = 0;
  let firstAt = 0;
  let lastAt = 0;
  let allDone: () => void = () => undefined;
  const done = new Promise<void>((r) => (allDone = r));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const c = await startOurConsumer({
    brokers: p.brokers,
    connection: benchConnection(),
    topic,
    groupId: group,
    registry: new ProcessorRegistry(),
    concurrency: p.concurrency,
    onOutcome: (o) => {
      if (o.status !== 'FINISHED') {
        failures.push(`ours run ${run}: task ${o.taskId} ended ${o.status}`);
        return;
      }
      const now = performance.now();
      if (finished === 0) firstAt = now;
      if (++finished === p.n) {
        lastAt = now;
        allDone();
      }
    },
  });
  try {
    await within(done, consumeTimeoutMs(p.n), () => `our consumer finished only ${finished} of ${p.n} tasks`);
  } finally {
    await c.stop();
  }
  const joinedAt = await c.joined;
  return {
    consumer: 'taskmanager TaskConsumer',
    kind: 'ours',
    run,
    tasks: finished,
    joinMs: joinedAt - t0,
    ms: lastAt - firstAt,
    totalMs: lastAt - t0,
    perSec: (finished / (lastAt - firstAt)) * 1000,
    cpuPct: cpuPercent(cpu0, lastAt - t0),
  };
}

async function runBullmq(
  p: Params,
  redis: OwnRedis,
  run: number,
  peer: BullmqPeer,
  failures: string[],
): Promise<ConsumeRow> {
  // Loaded here only: --smoke and --no-peers need no bullmq.
  const { runBullmqPeer } = await import('./lib/bullmq-peer.js');
  // The same task messages as on the topic, as job data.
  const record = prefillRecords(p.n, p.keys, 'NoopProcessor');
  const r = await runBullmqPeer({
    port: redis.port,
    n: p.n,
    concurrency: p.concurrency,
    data: (i) => JSON.parse(String(record(i).value)) as Record<string, unknown>,
    timeoutMs: consumeTimeoutMs(p.n),
    failures,
    run,
    redisCpuMs: () => redis.cpuMs(),
  });
  peer.runs.push({ run, addMs: r.addMs, redisCpuPct: r.redisCpuPct });
  return {
    consumer: `BullMQ ${peer.bullmq} Worker`,
    kind: 'bullmq',
    run,
    tasks: r.jobs,
    joinMs: r.joinMs,
    ms: r.ms,
    totalMs: r.totalMs,
    perSec: (r.jobs / r.ms) * 1000,
    cpuPct: r.cpuPct,
  };
}

async function runConsume(p: Params, topic: string): Promise<ConsumeResult> {
  const kafka = rawKafka(p.brokers, 'bench-throughput', benchConnection());
  await createTaskTopics(kafka, [topic], p.partitions, { fresh: true });
  const groups: string[] = [];
  const failures: string[] = [];
  let redis: OwnRedis | undefined;
  let peer: BullmqPeer | undefined;
  if (p.peers) {
    const started = await OwnRedis.start();
    if ('skipped' in started) peer = { skipped: started.skipped, runs: [] };
    else {
      redis = started;
      peer = {
        bullmq: versionOf('bullmq'),
        redis: `${started.version} (127.0.0.1:${started.port}, pid ${started.pid})`,
        removeOnComplete: true,
        runs: [],
      };
    }
  }
  try {
    const fill = await prefillTasks(kafka, topic, p.n, p.keys, 'NoopProcessor');
    const rows: ConsumeRow[] = [];
    // Interleaved, the machine being noisy: raw, ours, BullMQ, raw, ours, BullMQ; the best of each is compared.
    for (const run of [1, 2]) {
      rows.push(await runRaw(p, topic, run, groups));
      rows.push(await runOurs(p, topic, run, groups, failures));
      if (redis && peer) rows.push(await runBullmq(p, redis, run, peer, failures));
    }
    const best = (kind: ConsumerKind): number =>
      Math.max(...rows.filter((r) => r.kind === kind).map((r) => r.perSec));
    const bestBullmq = redis ? best('bullmq') : undefined;
    return {
      prefill: { records: fill.records, ms: fill.ms, perSec: (fill.records / fill.ms) * 1000 },
      rows,
      bestRaw: best('raw'),
      bestOurs: best('ours'),
      ratio: best('ours') / best('raw'),
      ...(bestBullmq === undefined ? {} : { bestBullmq, oursVsBullmq: best('ours') / bestBullmq }),
      ...(peer ? { peer } : {}),
      failures,
    };
  } finally {
    await redis?.stop();
    await deleteGroups(kafka, groups);
    await deleteTopics(kafka, [topic]);
  }
}

function printConsume(p: Params, r: ConsumeResult): void {
  console.log(
    `\nconsume: ${p.n} task messages (${p.keys} schedules, ${p.partitions} partitions) pre-filled at ` +
      `${cell(r.prefill.perSec)}/s; our consumer --concurrency ${p.concurrency}, NoopProcessor`,
  );
  const peer = r.peer;
  if (peer?.skipped) console.log(`BullMQ peer: skipped: ${peer.skipped}`);
  else if (peer)
    console.log(
      `BullMQ peer: the same ${p.n} task messages as jobs (addBulk, not timed; removeOnComplete: true), one Worker ` +
        `--concurrency ${p.concurrency}, no-op processor; Redis ${peer.redis}, no persistence`,
    );
  console.log('');
  const share = (x: number, of: number): string => `${cell((x / of) * 100, 1)} %`;
  printTable(
    [
      'consumer',
      'run',
      'tasks',
      'join ms',
      'first→last s',
      'tasks/s',
      'CPU %',
      'of best raw',
      'of best ours',
    ],
    r.rows.map((x) => [
      x.consumer,
      String(x.run),
      String(x.tasks),
      cell(x.joinMs),
      cell(x.ms / 1000, 2),
      cell(x.perSec),
      cell(x.cpuPct),
      share(x.perSec, r.bestRaw),
      share(x.perSec, r.bestOurs),
    ]),
  );
  const pct = r.ratio * 100;
  console.log(
    `\nbest raw ${cell(r.bestRaw)}/s, best ours ${cell(r.bestOurs)}/s: ours/raw ${cell(pct, 1)} % ` +
      `(target ≥ 40 %: ${pct >= 40 ? 'met' : 'MISSED'})`,
  );
  if (r.bestBullmq !== undefined && r.oursVsBullmq !== undefined)
    console.log(
      `best BullMQ ${cell(r.bestBullmq)}/s: BullMQ/raw ${cell((r.bestBullmq / r.bestRaw) * 100, 1)} %, ` +
        `ours/BullMQ ${cell(r.oursVsBullmq, 2)}× (target: ours ahead: ${r.oursVsBullmq > 1 ? 'met' : 'MISSED'})`,
    );
  for (const x of peer?.runs ?? [])
    console.log(
      `BullMQ run ${x.run}: jobs added in ${cell(x.addMs / 1000, 2)} s; redis-server used ` +
        `${cell(x.redisCpuPct)} % of a core while the worker drained them (not in the CPU % column)`,
    );
  for (const f of r.failures.slice(0, 10)) console.log(`failure: ${f}`);
}

// ---------------------------------------------------------------------------------------------------------------
// e2e: our scheduler CLI publishing, our TaskConsumer consuming

interface E2eResult {
  schedules: number;
  windowS: number;
  /** Task records whose `firedAt` lies in the window, per second. */
  publishedPerSec: number;
  /** firedAt minus scheduledFor of those. */
  fireLagMs: Summary;
  processedPerSec: number;
  /** Processed at the moment minus its scheduled instant, for tasks processed in the window. */
  lagMs: Summary;
  backlogGrowth: number;
  schedulerCpuPct: number | undefined;
  consumerCpuPct: number;
  notes: string[];
}

function scheduleFile(p: Params, topic: string): string {
  const entries: RawScheduleEntry[] = Array.from({ length: p.schedules }, (_, i) => ({
    Id: `e2e-${i}`,
    Cron: '* * * * * *',
    Topic: topic,
    Misfire: 'skip',
    TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor', TaskParam: 'bench' },
  }));
  const file = join(tmpdir(), `bench-throughput-${randomUUID()}.json`);
  writeFileSync(file, JSON.stringify(entries));
  return file;
}

async function runEndToEnd(p: Params, topic: string): Promise<E2eResult> {
  const kafka = rawKafka(p.brokers, 'bench-throughput', benchConnection());
  await createTaskTopics(kafka, [topic], 12, { fresh: true });
  const file = scheduleFile(p, topic);
  const consumerGroup = `bench-e2e-consumer-${randomUUID()}`;
  const schedulerGroup = `bench-e2e-${randomUUID()}`;
  const notes: string[] = [];
  let processed = 0;
  let measuring = false;
  const lags: number[] = [];
  let firstProcessed: () => void = () => undefined;
  const first = new Promise<void>((r) => (firstProcessed = r));
  const c = await startOurConsumer({
    brokers: p.brokers,
    connection: benchConnection(),
    topic,
    groupId: consumerGroup,
    registry: new ProcessorRegistry(),
    concurrency: p.concurrency,
    onOutcome: (o) => {
      if (o.status !== 'FINISHED') return;
      if (processed++ === 0) firstProcessed();
      if (measuring) lags.push(Date.now() - Date.parse(o.taskId.slice(o.taskId.lastIndexOf('@') + 1)));
    },
  });
  let out = '';
  const child = spawn(
    process.execPath,
    [
      ...profiling('taskscheduler'),
      join(ROOT, 'dist/src/scheduler/cli.js'),
      'run',
      '--brokers',
      p.brokers.join(','),
      '--schedule',
      file,
      '--group',
      schedulerGroup,
      '--log-level',
      'warn',
    ],
    { env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const stopScheduler = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await c.joined;
    await within(
      Promise.race([first, exited.then(() => Promise.reject(new Error(`scheduler exited:\n${out}`)))]),
      60_000,
      () => `no task processed within 60 s of starting the scheduler\n${out.slice(-2000)}`,
    );
    // Warm-up: every state partition taken over, the first seconds' fires (and misfire handling) behind us.
    await sleep(p.smoke ? 1000 : 5000);
    const p0 = processed;
    const s0 = processCpuMs(child.pid ?? -1);
    const cpu0 = process.cpuUsage();
    const from = Date.now();
    measuring = true;
    await sleep(p.windowS * 1000);
    measuring = false;
    const to = Date.now();
    const p1 = processed;
    const s1 = processCpuMs(child.pid ?? -1);
    const consumerCpuPct = cpuPercent(cpu0, to - from);
    await stopScheduler();
    // Published in the window: task records whose firedAt (handed to the producer) lies in it, read back.
    let published = 0;
    const fireLags: number[] = [];
    await scanTopic(kafka, topic, (value) => {
      const t = JSON.parse(value.toString('utf8')) as { firedAt: string; scheduledFor: string };
      const firedAt = Date.parse(t.firedAt);
      if (firedAt < from || firedAt >= to) return;
      published++;
      fireLags.push(firedAt - Date.parse(t.scheduledFor));
    });
    if (/error/i.test(out)) notes.push(`scheduler said: ${out.trim().split('\n').slice(-3).join(' / ')}`);
    return {
      schedules: p.schedules,
      windowS: (to - from) / 1000,
      publishedPerSec: (published / (to - from)) * 1000,
      fireLagMs: summarize(fireLags),
      processedPerSec: ((p1 - p0) / (to - from)) * 1000,
      lagMs: summarize(lags),
      backlogGrowth: published - (p1 - p0),
      schedulerCpuPct: s0 === undefined || s1 === undefined ? undefined : ((s1 - s0) / (to - from)) * 100,
      consumerCpuPct,
      notes,
    };
  } finally {
    await stopScheduler();
    await c.stop();
    rmSync(file, { force: true });
    await deleteGroups(kafka, [consumerGroup, schedulerGroup]);
    await deleteTopics(kafka, [topic]);
  }
}

function printEndToEnd(p: Params, r: E2eResult): void {
  console.log(
    `\ne2e: ${r.schedules} schedules '* * * * * *' (taskscheduler CLI) → our TaskConsumer ` +
      `(--concurrency ${p.concurrency}, NoopProcessor), ${cell(r.windowS, 1)} s window\n`,
  );
  printTable(
    ['stage', 'tasks/s', 'CPU %', 'lag p50 ms', 'lag p99 ms'],
    [
      ['scheduled (expected)', cell(r.schedules), '-', '-', '-'],
      [
        'published (scheduler)',
        cell(r.publishedPerSec),
        cell(r.schedulerCpuPct),
        cell(r.fireLagMs.p50),
        cell(r.fireLagMs.p99),
      ],
      [
        'processed (consumer)',
        cell(r.processedPerSec),
        cell(r.consumerCpuPct),
        cell(r.lagMs.p50),
        cell(r.lagMs.p99),
      ],
    ],
  );
  const met = r.processedPerSec >= 25_000;
  console.log(
    `\nprocessed ${cell(r.processedPerSec)}/s end to end (target ≥ 25000/s: ${met ? 'met' : 'MISSED'}); ` +
      `backlog grew by ${r.backlogGrowth} in the window`,
  );
  if (r.publishedPerSec < 0.95 * r.schedules)
    console.log(
      `the scheduler published only ${cell(r.publishedPerSec)}/s of the ${r.schedules}/s due: it falls behind ` +
        '(its own limit here); the consumer rate is bounded by what it is fed',
    );
  else if (r.schedules < 30_000) console.log(`the load offered (${r.schedules} schedules) is below 30000/s`);
  if (r.backlogGrowth > 0.05 * r.publishedPerSec * r.windowS)
    console.log('the consumer fell behind what was published (backlog grew): it is at its own limit here');
  console.log(
    'lag: published = firedAt - scheduled instant (read back from the topic); processed = processed at - scheduled instant',
  );
  for (const n of r.notes) console.log(`note: ${n}`);
}

// ---------------------------------------------------------------------------------------------------------------
// broker: ProducerPerformance vs kafkajs

interface ProducerRow {
  producer: string;
  records: number;
  perSec: number;
  mbPerSec: number;
  avgLatencyMs: number;
  maxLatencyMs: number;
  latencyOf: string;
}

interface BrokerResult {
  rows: ProducerRow[];
  skipped?: string;
  javaLine?: string;
}

const KAFKAJS_BATCH = 1000;
const KAFKAJS_IN_FLIGHT = 5;

async function runBroker(p: Params, topic: string): Promise<BrokerResult> {
  const kafka = rawKafka(p.brokers, 'bench-throughput', benchConnection());
  await createTaskTopics(kafka, [topic], p.partitions, { fresh: true });
  const rows: ProducerRow[] = [];
  const result: BrokerResult = { rows };
  try {
    const tool = findProducerPerf();
    if ('missing' in tool) {
      result.skipped = tool.missing;
    } else {
      const j: PerfResult = await runProducerPerf(tool, {
        brokers: p.brokers,
        topic,
        records: p.perfN,
        recordSize: p.recordSize,
      });
      result.javaLine = j.line;
      rows.push({
        producer: `ProducerPerformance (Java, Kafka ${machineFacts(p.brokers).kafka})`,
        records: j.records,
        perSec: j.recordsPerSec,
        mbPerSec: j.mbPerSec,
        avgLatencyMs: j.avgLatencyMs,
        maxLatencyMs: j.maxLatencyMs,
        latencyOf: 'record',
      });
    }
    // Same shape of record as ProducerPerformance's: `recordSize` random upper-case letters, no key.
    const value = Buffer.from(
      Array.from({ length: p.recordSize }, () =>
        String.fromCharCode(65 + Math.floor(Math.random() * 26)),
      ).join(''),
    );
    const s = await produceAll(kafka, topic, p.perfN, () => ({ value }), {
      batch: KAFKAJS_BATCH,
      inFlight: KAFKAJS_IN_FLIGHT,
    });
    const perSec = (s.records / s.ms) * 1000;
    rows.push({
      producer: `kafkajs ${versionOf('kafkajs')} (${KAFKAJS_BATCH}/request, ${KAFKAJS_IN_FLIGHT} in flight)`,
      records: s.records,
      perSec,
      mbPerSec: (perSec * p.recordSize) / 2 ** 20,
      avgLatencyMs: s.requestMs.reduce((a, b) => a + b, 0) / s.requestMs.length,
      maxLatencyMs: Math.max(...s.requestMs),
      latencyOf: 'request',
    });
    return result;
  } finally {
    await deleteTopics(kafka, [topic]);
  }
}

function printBroker(p: Params, r: BrokerResult): void {
  console.log(
    `\nbroker: ${p.perfN} records of ${p.recordSize} bytes, acks=all, ${p.partitions} partitions\n`,
  );
  if (r.skipped) {
    console.log('!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!');
    console.log(`!!! SKIPPED ProducerPerformance: ${r.skipped}`);
    console.log('!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!');
  }
  printTable(
    ['producer', 'records', 'records/s', 'MB/s', 'avg latency ms', 'max latency ms', 'latency of'],
    r.rows.map((x) => [
      x.producer,
      String(x.records),
      cell(x.perSec),
      cell(x.mbPerSec, 2),
      cell(x.avgLatencyMs, 1),
      cell(x.maxLatencyMs, 1),
      x.latencyOf,
    ]),
  );
  if (r.javaLine) console.log(`\nProducerPerformance: ${r.javaLine}`);
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const p = parseParams();
  const machine = machineFacts(p.brokers);
  console.log(
    `throughput: parts ${p.parts.join(', ')}${p.smoke ? ' (smoke)' : ''}; ${describeMachine(machine)}; topics ${p.topic}*`,
  );
  const results: Record<string, unknown> = {};
  let failed = false;
  if (p.parts.includes('consume')) {
    const r = await runConsume(p, p.topic);
    printConsume(p, r);
    results['consume'] = r;
    if (r.failures.length > 0) failed = true;
  }
  if (p.parts.includes('e2e')) {
    const r = await runEndToEnd(p, `${p.topic}-e2e`);
    printEndToEnd(p, r);
    results['e2e'] = r;
    if (r.processedPerSec <= 0) failed = true;
  }
  if (p.parts.includes('broker')) {
    const r = await runBroker(p, `${p.topic}-perf`);
    printBroker(p, r);
    results['broker'] = r;
  }
  console.log('');
  writeResults('throughput', { params: p, machine, ...results });
  if (failed) process.exitCode = 1;
}

main().then(
  // kafkajs may leave sockets closing; the figures are out, so do not wait for them.
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
