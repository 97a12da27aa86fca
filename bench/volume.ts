/**
 * API tasks at volume: one taskscheduler (`-s none`), one taskapi and one taskconsumer (NoopProcessor on
 * taskTopic) on a broker of their own (`scripts/kafka-local`, a fresh data dir, topics from
 * scripts/create-topics.sh), with N tasks created over HTTP:
 *
 *   1. create: N POST /api/v1/tasks (one-shots with 200-byte payloads due over the next hour, every tenth a
 *      recurring `every`), split over the client counts (`--clients`, concurrent keep-alive clients); baseline in
 *      the same run: a bare fastify route validating the same body and sending the same definition with a raw
 *      idempotent kafkajs producer (acks=-1).                                   ≥ 2,000 creates/s, p99 ≤ 50 ms
 *   2. memory: RSS of taskapi and the scheduler, and the scheduler's heap per held definition, at N created; then a
 *      batch of one-shots due within the minute with keepFinished "5s", until each fired, finished and was retired
 *      (its GET answers 404): RSS and held definitions before and after.  ≤ 1 KB heap per definition (scheduler)
 *   3. restart to ready (spawn to the first /api/readyz 200) of taskapi with the N: from its store's checkpoint, and
 *      cold (its data dir deleted).                                                          ≤ 10 s checkpointed
 *   4. fire lag: `--due-rate` one-shots due each second for `--due-seconds`, written into taskmanager.tasks ahead
 *      of time; taskTopic read read_committed: each taskId once, lag = firedAt − scheduledFor (handed to the
 *      producer, as bench:firing measures it); beside it the record timestamp (set by kafkajs as it builds the
 *      produce request, after AddPartitionsToTxn) and when the reader got it, each − scheduledFor.
 *                                                                              p99 ≤ 50 ms, 0 missed, 0 twice
 *   5. the scheduler's CPU (from /proc) over the create phase, per create.                          ≤ 0.05 ms
 *      Beside it, the part beyond its idle CPU (measured for 5 s before) over as long: what the creates cost.
 *
 *   npm run bench:volume -- [--n 100000] [--clients 20,100] [--due-rate 1000] [--due-seconds 10]
 *                           [--retire 2000] [--broker-port P] [--smoke]
 *   --broker-port: the broker's port (its controller's is P+1); default free ports. Env CPU_PROF_FOR=taskscheduler
 *   (and CPU_PROF_DIR): a CPU profile of the scheduler, written as the run ends. Not a test: it prints figures
 *   (targets are reported, not asserted) and writes bench/results/volume-*.json. Logs go to a temporary folder.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Message } from 'kafkajs';
import { definitionFromInput } from '../src/api/task-input.js';
import type { TaskInput } from '../src/api/task-input.js';
import { EVENTS_TOPIC } from '../src/shared/codecs/task-event.js';
import { definitionRecord, TASKS_TOPIC } from '../src/shared/tasks/definition.js';
import { OP_HEADER } from '../src/shared/tasks/task-log.js';
import { serveBare, startBare } from './lib/api-bare.js';
import type { BareServer, Canned } from './lib/api-bare.js';
import { concurrentPosts, timedJson } from './lib/api-http.js';
import type { PostLoad } from './lib/api-http.js';
import { createCompactedTopic } from './lib/api-kafka.js';
import { startTaskapi } from './lib/api-taskapi.js';
import { cleanUp, cleanUpOnSignal } from './lib/started.js';
import type { Started } from './lib/started.js';
import type { Taskapi } from './lib/api-taskapi.js';
import { restingHeap, startScheduler } from './lib/bench-scheduler.js';
import type { Scheduler } from './lib/bench-scheduler.js';
import { processAnonRssMb, processCpuMs, processRssMb } from './lib/child-cpu.js';
import { produceAll, rawKafka } from './lib/kafka-bench.js';
import {
  cell,
  describeMachine,
  machineFacts,
  positiveInts,
  printTable,
  summarize,
  writeResults,
} from './lib/report.js';
import { whenReadable } from '../test/kit/kafka.js';
import { OwnBroker } from '../test/kit/own-broker.js';
import { exitWithin, ROOT, startCli } from '../test/kit/processes.js';
import type { Cli } from '../test/kit/processes.js';
import { TopicReader } from '../test/kit/topic-reader.js';
import { poll, sleep, waitFor } from '../test/kit/wait.js';

const SELF = fileURLToPath(import.meta.url);
const DEFAULTS = { topic: 'taskTopic', group: 'bench-volume', timeZone: 'UTC' };
/** The create baseline's records go here, not into taskmanager.tasks. */
const RAW_TOPIC = 'bench-volume-raw';
const TARGETS = {
  createsPerS: 2000,
  createP99Ms: 50,
  heapPerDefinitionKB: 1,
  taskapiRssMbAt1M: 1024,
  restartMs: 10_000,
  lagP99Ms: 50,
  cpuPerCreateMs: 0.05,
} as const;
/** A payload of 200 bytes as JSON. */
const PAYLOAD = { data: 'x'.repeat(189) };

interface Params {
  n: number;
  clients: number[];
  dueRate: number;
  dueSeconds: number;
  retire: number;
  brokerPort?: number;
  smoke: boolean;
  /** How long the resting heap is sampled. */
  heapMs: number;
}

function parseParams(values: Record<string, string | boolean | undefined>): Params {
  const smoke = values['smoke'] === true;
  const int = positiveInts(values);
  const clients = String(values['clients'] ?? (smoke ? '5,20' : '20,100'))
    .split(',')
    .map((c) => Number(c));
  if (clients.some((c) => !Number.isInteger(c) || c < 1))
    throw new Error(`--clients must be positive integers separated by commas (got ${values['clients']})`);
  return {
    n: int('n', smoke ? 200 : 100_000),
    clients,
    dueRate: int('due-rate', smoke ? 50 : 1000),
    dueSeconds: int('due-seconds', smoke ? 1 : 10),
    retire: int('retire', smoke ? 20 : 2000),
    ...(values['broker-port'] === undefined ? {} : { brokerPort: int('broker-port', 0) }),
    smoke,
    heapMs: smoke ? 500 : 6000,
  };
}

const pad = (i: number): string => String(i).padStart(7, '0');

/** Created task i: a one-shot due within the hour after `fromMs`, every tenth a recurring task. */
function createBody(prefix: string, i: number, fromMs: number): TaskInput & { id: string } {
  const schedule =
    i % 10 === 9
      ? { every: '1h' }
      : { runAt: new Date(fromMs + 60_000 + ((i * 7919) % 3540) * 1000).toISOString() };
  return { id: `${prefix}-${pad(i)}`, processor: 'NoopProcessor', payload: PAYLOAD, schedule };
}

interface CreateRow {
  label: string;
  clients: number;
  load: PostLoad;
  baseline: boolean;
}

const rss = (pid: number): number => processRssMb(pid);
const mb = (bytes: number): number => bytes / 2 ** 20;

/** The tasks taskapi's view holds (the `total` of its list). */
async function viewSize(api: Taskapi): Promise<number> {
  const r = await timedJson<{ total?: number }>(`${api.base}/api/v1/tasks?limit=1`);
  if (r.status !== 200) throw new Error(`GET /api/v1/tasks: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.total ?? NaN;
}

const held = async (s: Scheduler): Promise<number> =>
  (await s.metrics()).get('taskmanager_scheduler_api_definitions') ?? NaN;

/** 1 and 5: per client count, the baseline then taskapi; the scheduler's and taskapi's CPU over taskapi's runs. */
async function measureCreates(
  p: Params,
  api: Taskapi,
  bare: BareServer,
  sched: Scheduler,
): Promise<{
  rows: CreateRow[];
  schedulerCpuMs: number;
  /** Wall time over which schedulerCpuMs was taken. */
  schedulerWallMs: number;
  taskapiCpuMs: number;
  idleCpuPerS: number;
}> {
  const cpu = (pid: number): number => processCpuMs(pid) ?? NaN;
  // The scheduler's CPU doing nothing (heartbeats, fetches), per second, to tell the creates' part.
  const idle0 = cpu(sched.child.pid ?? -1);
  const idleWall = performance.now();
  await sleep(p.smoke ? 500 : 5000);
  const idleCpuPerS = ((cpu(sched.child.pid ?? -1) - idle0) / (performance.now() - idleWall)) * 1000;
  const rows: CreateRow[] = [];
  const fromMs = Date.now();
  const perLevel = Math.floor(p.n / p.clients.length);
  let schedulerCpuMs = 0;
  let schedulerWallMs = 0;
  let taskapiCpuMs = 0;
  let next = 0;
  for (const [level, clients] of p.clients.entries()) {
    const n = level === p.clients.length - 1 ? p.n - next : perLevel;
    const rawN = Math.min(n, 10_000);
    rows.push({
      label: 'bare fastify + raw kafkajs producer (baseline)',
      clients,
      baseline: true,
      load: await concurrentPosts(bare.base, '/api/v1/tasks', (i) => createBody('raw', i, fromMs), {
        from: next,
        n: rawN,
        clients,
      }),
    });
    const s0 = cpu(sched.child.pid ?? -1);
    const w0 = performance.now();
    const a0 = cpu(api.cli.pid);
    const load = await concurrentPosts(api.base, '/api/v1/tasks', (i) => createBody('vol', i, fromMs), {
      from: next,
      n,
      clients,
    });
    taskapiCpuMs += cpu(api.cli.pid) - a0;
    // The scheduler applies what taskapi wrote a moment later: its CPU until it holds all created so far.
    const createdSoFar = next + n;
    await waitFor(async () => (await held(sched)) >= createdSoFar, {
      timeoutMs: 600_000,
      intervalMs: 100,
      what: () => `the scheduler holding ${createdSoFar} definitions\n${sched.output().slice(-2000)}`,
    });
    schedulerCpuMs += cpu(sched.child.pid ?? -1) - s0;
    schedulerWallMs += performance.now() - w0;
    rows.push({ label: 'taskapi POST /api/v1/tasks', clients, baseline: false, load });
    if (load.failed > 0)
      throw new Error(`taskapi: ${load.failed} creates failed; first: ${load.firstFailure}`);
    next += n;
  }
  return { rows, schedulerCpuMs, schedulerWallMs, taskapiCpuMs, idleCpuPerS };
}

interface Memory {
  label: string;
  taskapiRssMb: number;
  /** Of which not backed by a file (its store's mapped pages are). */
  taskapiAnonRssMb: number;
  /** The lowest over the seconds the scheduler's resting heap is measured (and its anonymous part then). */
  taskapiRestingRssMb: number;
  taskapiRestingAnonRssMb: number;
  schedulerRssMb: number;
  schedulerHeapMb: number;
  viewSize: number;
  held: number;
}

async function memory(label: string, p: Params, api: Taskapi, sched: Scheduler): Promise<Memory> {
  const at = { taskapiRssMb: rss(api.cli.pid), taskapiAnonRssMb: processAnonRssMb(api.cli.pid) };
  // taskapi's lowest RSS over the same seconds as the scheduler's resting heap: what it holds, once V8 has given
  // back the heap pages of the garbage of the phase just ended (its memory reducer runs when allocation slows).
  let resting = at;
  const sampler = setInterval(() => {
    const now = { taskapiRssMb: rss(api.cli.pid), taskapiAnonRssMb: processAnonRssMb(api.cli.pid) };
    if (now.taskapiRssMb < resting.taskapiRssMb) resting = now;
  }, 200);
  try {
    return {
      label,
      ...at,
      taskapiRestingRssMb: resting.taskapiRssMb,
      taskapiRestingAnonRssMb: resting.taskapiAnonRssMb,
      schedulerRssMb: rss(sched.child.pid ?? -1),
      schedulerHeapMb: mb(await restingHeap(sched, p.heapMs)),
      viewSize: await viewSize(api),
      held: await held(sched),
    };
  } finally {
    clearInterval(sampler);
  }
}

/** 2. One-shots due within the minute with keepFinished 5s: created, fired, finished, retired (GET 404). */
async function measureRetirement(
  p: Params,
  api: Taskapi,
  sched: Scheduler,
): Promise<{ retired: number; ms: number; before: Memory; after: Memory }> {
  const viewBefore = await viewSize(api);
  // Due within the minute: after their creation (at 100/s or more) and the memory figures with them all held,
  // spread over 20 s (smoke: 1 s, kept 1 s).
  const dueFrom = Date.now() + (p.smoke ? 1000 : 5000) + p.retire * 10 + p.heapMs;
  const spreadMs = p.smoke ? 1000 : 20_000;
  const body = (i: number): TaskInput & { id: string } => ({
    id: `retire-${pad(i)}`,
    processor: 'NoopProcessor',
    payload: PAYLOAD,
    schedule: { runAt: new Date(dueFrom + ((i * 7919) % spreadMs)).toISOString() },
    keepFinished: p.smoke ? '1s' : '5s',
  });
  const t0 = performance.now();
  const created = await concurrentPosts(api.base, '/api/v1/tasks', body, {
    from: 0,
    n: p.retire,
    clients: 20,
  });
  if (created.failed > 0)
    throw new Error(`retirement batch: ${created.failed} failed; ${created.firstFailure}`);
  const before = await memory(`N + ${p.retire} due within the minute`, p, api, sched);
  let view = NaN;
  await waitFor(async () => (view = await viewSize(api)) <= viewBefore, {
    timeoutMs: 180_000,
    intervalMs: 500,
    what: () => `taskapi's view back to ${viewBefore} tasks (last seen ${view})`,
  });
  const ms = performance.now() - t0;
  let retired = 0;
  for (let i = 0; i < p.retire; i++) {
    const r = await timedJson<unknown>(`${api.base}/api/v1/tasks/${body(i).id}`);
    if (r.status === 404) retired++;
  }
  const after = await memory('after that batch retired', p, api, sched);
  return { retired, ms, before, after };
}

/** 4. `dueRate` one-shots due each second for `dueSeconds`, written ahead; each taskId's first fire and doubles. */
async function measureFireLag(
  p: Params,
  brokers: string[],
  sched: Scheduler,
): Promise<{
  expected: number;
  fired: number;
  missed: number;
  doubled: number;
  /** Handed to the producer (the task's `firedAt`) − `scheduledFor`: the fire lag of bench:firing. */
  lagMs: number[];
  /** The record's CreateTime (kafkajs sets it as it builds the produce request) − `scheduledFor`. */
  producedMs: number[];
  /** When the reader got it (read_committed: after the commit) − `scheduledFor`. */
  visibleMs: number[];
  leadMs: number;
}> {
  const count = p.dueRate * p.dueSeconds;
  const prefix = `lag-${randomUUID().slice(0, 8)}`;
  const reader = await new TopicReader(
    () => rawKafka(brokers, 'bench-volume-reader'),
    [{ topic: DEFAULTS.topic, fromEnd: true, keep: (v) => v.includes(prefix) }],
    { groupPrefix: 'bench-volume-reader' },
  ).start();
  try {
    // Time for the scheduler to read and arm them all before the first is due.
    const firstDue = Date.now() + (p.smoke ? 2000 : 15_000) + count;
    const record = (i: number): Message => {
      const at = firstDue + Math.floor((i * 1000) / p.dueRate);
      const def = definitionFromInput(
        {
          id: `${prefix}-${pad(i)}`,
          processor: 'NoopProcessor',
          payload: PAYLOAD,
          schedule: { runAt: new Date(at).toISOString() },
        },
        DEFAULTS,
        Date.now(),
      );
      const r = definitionRecord(def, { [OP_HEADER]: 'create' });
      return { key: r.key, value: r.value as Buffer, headers: r.headers };
    };
    await produceAll(rawKafka(brokers, 'bench-volume-writer'), TASKS_TOPIC, count, record, {
      batch: 1000,
      inFlight: 2,
    });
    const leadMs = firstDue - Date.now();
    const lastDue = firstDue + p.dueSeconds * 1000;
    const ids = (): Set<string> =>
      new Set(reader.values<{ taskId: string }>(DEFAULTS.topic).map((t) => t.taskId));
    await poll(
      () => (ids().size >= count ? true : undefined),
      Math.max(0, lastDue - Date.now()) + 30_000,
      200,
    );
    await reader.caughtUp(DEFAULTS.topic).catch((err: unknown) => {
      throw new Error(`${String(err)}; the scheduler's output:\n${sched.output().slice(-6000)}`);
    });
    const fired = reader.received<{ taskId: string; scheduledFor: string; firedAt: string }>(DEFAULTS.topic);
    const first = new Map<string, { lag: number; produced: number; visible: number }>();
    for (const f of fired) {
      if (first.has(f.value.taskId)) continue;
      const due = Date.parse(f.value.scheduledFor);
      first.set(f.value.taskId, {
        lag: Date.parse(f.value.firedAt) - due,
        produced: f.record.timestamp - due,
        visible: f.receivedAt - due,
      });
    }
    const all = [...first.values()];
    return {
      expected: count,
      fired: first.size,
      missed: count - first.size,
      doubled: fired.length - first.size,
      lagMs: all.map((x) => x.lag),
      producedMs: all.map((x) => x.produced),
      visibleMs: all.map((x) => x.visible),
      leadMs,
    };
  } finally {
    await reader.stop();
  }
}

/** 3. taskapi stopped and started again: on its store, then with its data dir deleted. */
async function measureRestarts(
  brokers: string[],
  logDir: string,
  api: Taskapi,
): Promise<Array<{ label: string; readyMs: number; tasks: number; logged: number }>> {
  const dataDir = join(logDir, 'data-1');
  const rows: Array<{ label: string; readyMs: number; tasks: number; logged: number }> = [];
  await api.stop();
  const warm = await startTaskapi(brokers, logDir, 2, DEFAULTS, dataDir);
  rows.push({
    label: 'checkpointed (its store kept)',
    readyMs: warm.readyMs,
    tasks: await viewSize(warm),
    logged: warm.logged.ms,
  });
  await warm.stop();
  rmSync(dataDir, { recursive: true, force: true });
  const cold = await startTaskapi(brokers, logDir, 3, DEFAULTS, dataDir);
  rows.push({
    label: 'cold (data dir deleted)',
    readyMs: cold.readyMs,
    tasks: await viewSize(cold),
    logged: cold.logged.ms,
  });
  await cold.stop();
  return rows;
}

async function run(p: Params, logDir: string, started: Started, announce: (brokers: string[]) => void) {
  const broker = await OwnBroker.create(
    logDir,
    p.brokerPort === undefined ? undefined : { port: p.brokerPort, controller: p.brokerPort + 1 },
  );
  started.broker = broker;
  announce(broker.brokers);
  const t0 = performance.now();
  const step = (what: string): void =>
    console.error(`${((performance.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  await broker.start();
  await broker.createSharedTopics();
  const brokers = broker.brokers;
  const kafka = rawKafka(brokers, 'bench-volume');
  await whenReadable(kafka, [TASKS_TOPIC, EVENTS_TOPIC, DEFAULTS.topic]);
  await createCompactedTopic(kafka, RAW_TOPIC, TASKS_TOPIC);
  step('broker started, topics made');
  const sched = await startScheduler(join(ROOT, 'dist/src/scheduler/cli.js'), DEFAULTS.group, brokers);
  const consumer: Cli = startCli(
    'taskconsumer',
    ['-b', brokers.join(','), '-t', DEFAULTS.topic, '-g', 'bench-volume-consumer'],
    { logFile: join(logDir, 'taskconsumer.log') },
  );
  const api = await startTaskapi(brokers, logDir, 1, DEFAULTS);
  const cannedFile = join(logDir, 'canned.json');
  writeFileSync(cannedFile, JSON.stringify({ task: {}, page: { items: [], total: 0 } }));
  const bare = await startBare(SELF, cannedFile, ['--brokers', brokers.join(',')]);
  started.bare = bare;
  step('scheduler, consumer, taskapi and the baseline server up');
  const empty = await memory('empty (nothing created)', p, api, sched);
  const creates = await measureCreates(p, api, bare, sched);
  step('created');
  const atN = await memory(`N = ${p.n} created`, p, api, sched);
  const retirement = await measureRetirement(p, api, sched);
  step('retirement batch retired');
  const lag = await measureFireLag(p, brokers, sched);
  step('fire lag measured');
  const restarts = await measureRestarts(brokers, logDir, api);
  consumer.signal('SIGTERM');
  await exitWithin(consumer, 15_000);
  return {
    brokers,
    creates,
    memory: [empty, atN, retirement.before, retirement.after],
    retirement,
    lag,
    restarts,
  };
}

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    canned: { type: 'string' },
    brokers: { type: 'string' },
    n: { type: 'string' },
    clients: { type: 'string' },
    'due-rate': { type: 'string' },
    'due-seconds': { type: 'string' },
    retire: { type: 'string' },
    'broker-port': { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});

async function main(): Promise<void> {
  const p = parseParams(values);
  const logDir = mkdtempSync(join(tmpdir(), 'taskmanager-volume-bench-'));
  const load1 = (): string => loadavg()[0]?.toFixed(2) ?? '?';
  const loadBefore = load1();
  const started: Started = {};
  cleanUpOnSignal(started, logDir);
  const announce = (brokers: string[]): void =>
    console.log(
      `volume: ${p.n} creates over HTTP (clients ${p.clients.join(', ')}), ${p.retire} retired, ` +
        `${p.dueRate} due/s × ${p.dueSeconds} s${p.smoke ? ' (smoke)' : ''}; ` +
        `${describeMachine(machineFacts(brokers))} (own broker); load average ${loadBefore}`,
    );
  let x: Awaited<ReturnType<typeof run>>;
  try {
    x = await run(p, logDir, started, announce);
  } finally {
    await cleanUp(started, logDir);
  }
  const f1 = (v: number): string => cell(v, 1);

  console.log('\n1. create over HTTP (201 = acked by Kafka)\n');
  printTable(
    ['who', 'clients', 'creates', 'creates/s', 'p50 ms', 'p99 ms', 'max ms', 'failed'],
    x.creates.rows.map((r) => {
      const s = summarize(r.load.ms);
      return [
        r.label,
        String(r.clients),
        String(r.load.ms.length),
        cell(r.load.okPerS),
        f1(s.p50),
        f1(s.p99),
        f1(s.max),
        String(r.load.failed),
      ];
    }),
  );

  console.log(
    "\n2. memory (RSS MB; taskapi's anonymous part, not its store's mapped file, in brackets; taskapi resting and scheduler heap: lowest over a few seconds)\n",
  );
  printTable(
    [
      'when',
      'taskapi RSS (anon)',
      'taskapi resting',
      'scheduler RSS',
      'scheduler heap',
      'taskapi view',
      'scheduler held',
    ],
    x.memory.map((m) => [
      m.label,
      `${cell(m.taskapiRssMb)} (${cell(m.taskapiAnonRssMb)})`,
      `${cell(m.taskapiRestingRssMb)} (${cell(m.taskapiRestingAnonRssMb)})`,
      cell(m.schedulerRssMb),
      cell(m.schedulerHeapMb),
      String(m.viewSize),
      String(m.held),
    ]),
  );
  const [empty, atN] = [x.memory[0]!, x.memory[1]!];
  // The resting heap is sampled without a forced GC, so one sample may still hold garbage: the lowest heap of any
  // sample holding at least the N, over the N, bounds what N definitions cost.
  const restingWithN = Math.min(...x.memory.filter((m) => m.held >= atN.held).map((m) => m.schedulerHeapMb));
  const heapPerDefinitionKB =
    ((restingWithN - empty.schedulerHeapMb) * 1024) / Math.max(1, atN.held - empty.held);
  const taskapiRssPerDefinitionKB =
    ((atN.taskapiRssMb - empty.taskapiRssMb) * 1024) / Math.max(1, atN.viewSize - empty.viewSize);
  console.log(
    `scheduler heap per held definition ${heapPerDefinitionKB.toFixed(2)} KB; taskapi RSS per task ` +
      `${taskapiRssPerDefinitionKB.toFixed(2)} KB; ${x.retirement.retired} of ${p.retire} one-shots answered 404 ` +
      `(retired) ${(x.retirement.ms / 1000).toFixed(1)} s after their creation began`,
  );

  console.log(`\n3. taskapi restart with the N and the fire-lag batch: spawn → /api/readyz 200\n`);
  printTable(
    ['start', 'ready ms', 'its "view rebuilt" ms', 'tasks'],
    x.restarts.map((r) => [r.label, cell(r.readyMs), cell(r.logged), String(r.tasks)]),
  );

  const lag = summarize(x.lag.lagMs);
  const produced = summarize(x.lag.producedMs);
  const visible = summarize(x.lag.visibleMs);
  const p50p99max = (s: ReturnType<typeof summarize>): string =>
    `p50 ${cell(s.p50)} ms, p99 ${cell(s.p99)} ms, max ${cell(s.max)} ms`;
  console.log(
    `\n4. fire lag: ${x.lag.expected} one-shots, ${p.dueRate} due/s (written ${(x.lag.leadMs / 1000).toFixed(1)} s ` +
      `before the first was due): fired ${x.lag.fired}, missed ${x.lag.missed}, twice ${x.lag.doubled}; ` +
      `lag (firedAt) ${p50p99max(lag)}; record timestamp ${p50p99max(produced)}; read committed ${p50p99max(visible)}`,
  );
  const cpuPerCreateMs = x.creates.schedulerCpuMs / p.n;
  // What the scheduler spends on the creates beyond what it spends idle (its polls and heartbeats) over as long.
  const idleShareMs = (x.creates.idleCpuPerS * x.creates.schedulerWallMs) / 1000;
  const cpuBeyondIdleMs = (x.creates.schedulerCpuMs - idleShareMs) / p.n;
  console.log(
    `\n5. CPU per create over the create phase: scheduler ${cpuPerCreateMs.toFixed(3)} ms ` +
      `(idle: ${(x.creates.idleCpuPerS / 10).toFixed(1)} % of a core, ${(idleShareMs / p.n).toFixed(3)} ms of it per ` +
      `create; beyond idle ${cpuBeyondIdleMs.toFixed(3)} ms), taskapi ${(x.creates.taskapiCpuMs / p.n).toFixed(3)} ms\n`,
  );

  const ours = x.creates.rows.filter((r) => !r.baseline);
  const restart = x.restarts[0]?.readyMs ?? NaN;
  const targets = [
    ...ours.map((r) => ({
      target: `creates/s ≥ ${TARGETS.createsPerS}, ${r.clients} clients`,
      measured: `${cell(r.load.okPerS)}/s`,
      met: r.load.okPerS >= TARGETS.createsPerS,
    })),
    ...ours.map((r) => {
      const p99 = summarize(r.load.ms).p99;
      return {
        target: `create p99 ≤ ${TARGETS.createP99Ms} ms, ${r.clients} clients`,
        measured: `${f1(p99)} ms`,
        met: p99 <= TARGETS.createP99Ms,
      };
    }),
    {
      target: `scheduler heap ≤ ${TARGETS.heapPerDefinitionKB} KB per held definition`,
      measured: `${heapPerDefinitionKB.toFixed(2)} KB`,
      met: heapPerDefinitionKB <= TARGETS.heapPerDefinitionKB,
    },
    ...(p.n >= 1_000_000
      ? [
          {
            target: `taskapi RSS ≤ ${TARGETS.taskapiRssMbAt1M} MB at 1M`,
            measured:
              `${cell(atN.taskapiRssMb)} MB (anon ${cell(atN.taskapiAnonRssMb)}) as the creates ended; ` +
              `resting ${cell(atN.taskapiRestingRssMb)} MB (anon ${cell(atN.taskapiRestingAnonRssMb)})`,
            met: atN.taskapiRestingRssMb <= TARGETS.taskapiRssMbAt1M,
          },
        ]
      : []),
    {
      target: `restart ≤ ${TARGETS.restartMs / 1000} s (checkpointed)`,
      measured: `${(restart / 1000).toFixed(2)} s`,
      met: restart <= TARGETS.restartMs,
    },
    {
      target: `fire lag p99 ≤ ${TARGETS.lagP99Ms} ms, 0 missed, 0 twice`,
      measured: `${cell(lag.p99)} ms, ${x.lag.missed} missed, ${x.lag.doubled} twice`,
      met: lag.p99 <= TARGETS.lagP99Ms && x.lag.missed === 0 && x.lag.doubled === 0,
    },
    {
      target: `scheduler CPU ≤ ${TARGETS.cpuPerCreateMs} ms per create`,
      measured: `${cpuPerCreateMs.toFixed(3)} ms`,
      met: cpuPerCreateMs <= TARGETS.cpuPerCreateMs,
    },
  ];
  printTable(
    ['target', 'measured', 'met'],
    targets.map((t) => [t.target, t.measured, t.met ? 'yes' : 'no']),
  );
  console.log(`logs: ${logDir}; load average ${loadBefore} before, ${load1()} after`);
  writeResults('volume', {
    params: p,
    machine: machineFacts(x.brokers),
    loadBefore,
    loadAfter: load1(),
    logDir,
    creates: x.creates.rows.map(({ load: { ms, ...l }, ...r }) => ({ ...r, ...l, ms: summarize(ms) })),
    memory: x.memory,
    heapPerDefinitionKB,
    taskapiRssPerDefinitionKB,
    retirement: { retired: x.retirement.retired, ms: x.retirement.ms },
    restarts: x.restarts,
    lag: { ...x.lag, lagMs: lag, producedMs: produced, visibleMs: visible },
    cpuPerCreateMs,
    cpuPerCreateBeyondIdleMs: cpuBeyondIdleMs,
    taskapiCpuPerCreateMs: x.creates.taskapiCpuMs / p.n,
    schedulerIdleCpuPerS: x.creates.idleCpuPerS,
    targets,
  });
}

if (values.child === 'bare') {
  const canned = JSON.parse(readFileSync(values.canned ?? '', 'utf8')) as Canned;
  const port = await serveBare(canned, 0, {
    brokers: (values.brokers ?? '').split(','),
    topic: RAW_TOPIC,
    defaults: DEFAULTS,
  });
  console.log(JSON.stringify({ port }));
} else
  await main().then(
    // kafkajs may leave sockets closing; the figures are out, so do not wait for them.
    () => process.exit(process.exitCode ?? 0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
