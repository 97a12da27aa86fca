/**
 * API benchmark: the real `taskapi` (built CLI, its own process) against a broker of its own (`scripts/kafka-local`
 * on free ports, a fresh data dir, topics from `scripts/create-topics.sh`), with N task definitions written straight
 * into taskmanager.tasks. Baselines run in the same run, on the same broker and machine.
 *
 *   1. create: C sequential POST /api/v1/tasks; 201 means acked by Kafka and read back through taskapi's view.
 *      Baseline: an idempotent kafkajs producer sending the same record (acks=-1) one at a time.   p99 ≤ 30 ms
 *   2. list: GET /api/v1/tasks?limit=100, first page, random cursors (taken from a walk of every page), with a
 *      status and a processor filter. Baseline: a bare fastify route answering 100 canned tasks, taken from
 *      taskapi, with the same schemas (the HTTP and serialization floor).                             p99 ≤ 20 ms
 *   3. rebuild: taskapi spawned with the N seeded tasks, to its first /api/readyz 200; and the figure its
 *      "view rebuilt" line gives. Baseline: a kafkajs consumer reading the topic to its end.        ≤ 5 s
 *   4. get by id: autocannon at 50 connections over random existing ids. Baseline: the bare route answering one
 *      canned task.
 *
 *   npm run bench:api -- [--n 100000] [--creates 2000] [--requests 1000] [--rebuilds 3] [--duration 10]
 *                        [--connections 50] [--smoke]
 *   env: KAFKA_VERSION (the broker scripts/kafka-local runs). KAFKA_BROKERS is not used: the benchmark fills
 *   taskmanager.tasks, so it never runs on a shared broker. Logs go to a temporary folder, printed at the end.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { definitionFromInput } from '../src/api/task-input.js';
import type { TaskInput } from '../src/api/task-input.js';
import { encodeJson } from '../src/shared/messages.js';
import { EVENTS_TOPIC } from '../src/shared/codecs/task-event.js';
import { TASKS_TOPIC } from '../src/shared/tasks/definition.js';
import { OP_HEADER, WRITER_HEADER } from '../src/shared/tasks/task-log.js';
import { serveBare, startBare } from './lib/api-bare.js';
import type { BareServer, Canned } from './lib/api-bare.js';
import { load, sequentialGets, timedJson } from './lib/api-http.js';
import type { Timed } from './lib/api-http.js';
import {
  createCompactedTopic,
  PAUSED_EVERY,
  rawReadMs,
  rawSendLatencies,
  recordCount,
  seedId,
  seedTasks,
} from './lib/api-kafka.js';
import { printFigures, targetLines } from './lib/api-report.js';
import type { ApiFigures, LatencyRow, LoadRow, RebuildRun } from './lib/api-report.js';
import { startTaskapi } from './lib/api-taskapi.js';
import { cleanUp, cleanUpOnSignal } from './lib/started.js';
import type { Started } from './lib/started.js';
import type { Taskapi } from './lib/api-taskapi.js';
import { processCpuMs } from './lib/child-cpu.js';
import { rawKafka } from './lib/kafka-bench.js';
import {
  cpuPercent,
  describeMachine,
  machineFacts,
  positiveInts,
  printTable,
  summarize,
  writeResults,
} from './lib/report.js';
import { whenReadable } from '../test/kit/kafka.js';
import { OwnBroker } from '../test/kit/own-broker.js';

const SELF = fileURLToPath(import.meta.url);
/** What taskapi is started with, and what the baselines' records carry. */
const DEFAULTS = { topic: 'taskTopic', group: 'bench-api', timeZone: 'UTC' };
/** The create baseline's records go here, not into taskmanager.tasks, so they never show in the lists. */
const RAW_TOPIC = 'bench-api-raw';

interface Params {
  n: number;
  creates: number;
  requests: number;
  rebuilds: number;
  durationS: number;
  connections: number;
  smoke: boolean;
  /** Unmeasured requests before each series (JIT, connections). */
  warmup: number;
}

function parseParams(values: Record<string, string | boolean | undefined>): Params {
  const smoke = values['smoke'] === true;
  const int = positiveInts(values);
  return {
    n: int('n', smoke ? 2000 : 100_000),
    creates: int('creates', smoke ? 100 : 2000),
    requests: int('requests', smoke ? 50 : 1000),
    rebuilds: int('rebuilds', smoke ? 1 : 3),
    durationS: int('duration', smoke ? 1 : 10),
    connections: int('connections', 50),
    smoke,
    warmup: smoke ? 10 : 100,
  };
}

const pad = (i: number): string => String(i).padStart(6, '0');
const createBody = (id: string, i: number): TaskInput & { id: string } => ({
  id,
  name: `created task ${i}`,
  processor: 'NoopProcessor',
  param: `param-${i}`,
  schedule: { every: '1h' },
});
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

/** 1. Raw producer, then taskapi: the same bodies, the same records. Returns the rows and the ids created. */
async function measureCreates(
  p: Params,
  brokers: string[],
  api: Taskapi,
): Promise<{ create: ApiFigures['create']; ids: string[] }> {
  const writer = `taskapi-${randomUUID()}`;
  let valueBytes = 0;
  const raw = await rawSendLatencies(rawKafka(brokers, 'bench-api'), RAW_TOPIC, p.creates, p.warmup, (i) => {
    const body = createBody(`bench-r-${pad(i)}`, i);
    const value = encodeJson(definitionFromInput(body, DEFAULTS, Date.now()));
    valueBytes = value.length;
    return { key: body.id, value, headers: { [OP_HEADER]: 'create', [WRITER_HEADER]: writer } };
  });
  const ours: number[] = [];
  const ids: string[] = [];
  for (let i = 0; i < p.warmup + p.creates; i++) {
    const body = createBody(`bench-c-${pad(i)}`, i);
    const r = await timedJson<{ id?: string }>(`${api.base}/api/v1/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (r.status !== 201 || r.body.id !== body.id)
      throw new Error(`POST /api/v1/tasks ${body.id}: ${r.status} ${JSON.stringify(r.body)}`);
    ids.push(body.id);
    if (i >= p.warmup) ours.push(r.ms);
  }
  const rows: LatencyRow[] = [
    { label: 'raw kafkajs idempotent producer, 1 record (baseline)', ms: raw, baseline: true },
    { label: 'taskapi POST /api/v1/tasks', ms: ours },
  ];
  return { create: { valueBytes, rows }, ids };
}

interface Page {
  items: Array<{ id: string }>;
  total: number;
  nextCursor?: string;
}

/** Every page of a list in order: the cursors it hands out, each page's latency, and the first page. */
async function walk(base: string, filter: string): Promise<{ cursors: string[]; ms: number[]; first: Page }> {
  const cursors: string[] = [];
  const ms: number[] = [];
  let first: Page | undefined;
  for (let cursor: string | undefined = ''; cursor !== undefined;) {
    const r: Timed<Page> = await timedJson<Page>(
      `${base}/api/v1/tasks?limit=100${filter}${cursor && `&cursor=${cursor}`}`,
    );
    if (r.status !== 200) throw new Error(`list ${filter}: ${r.status} ${JSON.stringify(r.body)}`);
    first ??= r.body;
    ms.push(r.ms);
    cursor = r.body.nextCursor;
    if (cursor !== undefined) cursors.push(cursor);
  }
  if (!first || cursors.length === 0) throw new Error(`list ${filter}: a single page; seed more tasks`);
  return { cursors, ms, first };
}

/** 2. List rows on taskapi, and the bare floor with taskapi's own first page; writes the canned answers. */
async function measureLists(
  p: Params,
  api: Taskapi,
  cannedFile: string,
  started: Started,
): Promise<ApiFigures['list'] & { bare: BareServer }> {
  const all = await walk(api.base, '');
  const status = `&status=PAUSED`;
  const processor = `&processor=proc-3`;
  const paused = await walk(api.base, status);
  const byProc = await walk(api.base, processor);
  const task = await timedJson<unknown>(`${api.base}/api/v1/tasks/${seedId(0)}`);
  const canned: Canned = { task: task.body, page: all.first };
  writeFileSync(cannedFile, JSON.stringify(canned));
  const bare = await startBare(SELF, cannedFile);
  started.bare = bare;
  const q = (filter: string, cursors: string[]) => () =>
    `/api/v1/tasks?limit=100${filter}&cursor=${pick(cursors)}`;
  const series = (base: string, next: () => string) => sequentialGets(base, next, p.requests, p.warmup);
  const rows: LatencyRow[] = [
    {
      label: 'bare fastify, 100 canned tasks (baseline)',
      ms: await series(bare.base, q('', all.cursors)),
      baseline: true,
    },
    { label: 'taskapi, first page', ms: await series(api.base, () => '/api/v1/tasks?limit=100') },
    { label: 'taskapi, random cursor', ms: await series(api.base, q('', all.cursors)) },
    {
      label: `taskapi, status=PAUSED (${paused.first.total}), random cursor`,
      ms: await series(api.base, q(status, paused.cursors)),
    },
    {
      label: `taskapi, processor=proc-3 (${byProc.first.total}), random cursor`,
      ms: await series(api.base, q(processor, byProc.cursors)),
    },
  ];
  return { total: all.first.total, walk: { pages: all.ms.length, ms: all.ms }, rows, bare };
}

/** 4. autocannon on the floor, then on taskapi, over the same random ids. */
async function measureLoad(
  p: Params,
  servers: Array<{ label: string; base: string; pid: number }>,
  ids: string[],
): Promise<LoadRow[]> {
  const pathOf = (): string => `/api/v1/tasks/${pick(ids)}`;
  const rows: LoadRow[] = [];
  for (const s of servers) {
    await sequentialGets(s.base, pathOf, p.warmup * 2, 0);
    const cpu0 = processCpuMs(s.pid) ?? NaN;
    const own0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await load(s.base, pathOf, p.connections, p.durationS);
    const wall = performance.now() - t0;
    const serverCpu = (((processCpuMs(s.pid) ?? NaN) - cpu0) / wall) * 100;
    rows.push({ label: s.label, r, serverCpu, clientCpu: cpuPercent(own0, wall) });
  }
  return rows;
}

async function run(
  p: Params,
  logDir: string,
  started: Started,
  announce: (brokers: string[]) => void,
): Promise<ApiFigures & { brokers: string[] }> {
  const broker = await OwnBroker.create(logDir);
  started.broker = broker;
  announce(broker.brokers);
  await broker.start();
  await broker.createSharedTopics();
  const brokers = broker.brokers;
  const kafka = rawKafka(brokers, 'bench-api');
  await whenReadable(kafka, [TASKS_TOPIC, EVENTS_TOPIC, DEFAULTS.topic]);
  await createCompactedTopic(kafka, RAW_TOPIC, TASKS_TOPIC);
  const seed = await seedTasks(kafka, p.n, DEFAULTS.topic, DEFAULTS.group);
  console.error(`seeded ${p.n} definitions into ${TASKS_TOPIC} in ${Math.round(seed.ms)} ms`);
  const records = await recordCount(kafka, TASKS_TOPIC);

  // 3. Rebuild: raw reader and taskapi in turns; the last taskapi stays up for the rest.
  const rebuild: RebuildRun[] = [];
  let api: Taskapi | undefined;
  for (let i = 1; i <= p.rebuilds; i++) {
    await api?.stop();
    const rawMs = await rawReadMs(() => rawKafka(brokers, 'bench-api-raw-reader'), records);
    api = await startTaskapi(brokers, logDir, i, DEFAULTS);
    rebuild.push({ rawMs, readyMs: api.readyMs, loggedMs: api.logged.ms, loggedTasks: api.logged.tasks });
    if (api.logged.tasks !== p.n)
      throw new Error(`taskapi #${i} rebuilt ${api.logged.tasks} of ${p.n} tasks`);
  }
  if (!api) throw new Error('no taskapi started');

  const { create, ids: created } = await measureCreates(p, brokers, api);
  const { bare, ...list } = await measureLists(p, api, join(logDir, 'canned.json'), started);
  const ids = [...Array.from({ length: p.n }, (_, i) => seedId(i)), ...created];
  const loadRows = await measureLoad(
    p,
    [
      { label: 'bare fastify, 1 canned task (baseline)', base: bare.base, pid: bare.pid },
      { label: 'taskapi GET /api/v1/tasks/{id}', base: api.base, pid: api.cli.pid },
    ],
    ids,
  );
  await api.stop();
  return { brokers, seeded: p.n, create, list, rebuild, load: loadRows };
}

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    canned: { type: 'string' },
    n: { type: 'string' },
    creates: { type: 'string' },
    requests: { type: 'string' },
    rebuilds: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});

/** The floor's process: serves the canned answers until killed. */
async function childBare(cannedFile: string): Promise<void> {
  const port = await serveBare(JSON.parse(readFileSync(cannedFile, 'utf8')) as Canned, 0);
  console.log(JSON.stringify({ port }));
}

async function main(): Promise<void> {
  const p = parseParams(values);
  const logDir = mkdtempSync(join(tmpdir(), 'taskmanager-api-bench-'));
  const load1 = (): string => loadavg()[0]?.toFixed(2) ?? '?';
  const loadBefore = load1();
  const started: Started = {};
  cleanUpOnSignal(started, logDir);
  const announce = (brokers: string[]): void =>
    console.log(
      `api: ${p.n} seeded tasks, ${p.creates} creates, ${p.requests} requests per list row, ` +
        `${p.rebuilds} rebuild(s), autocannon ${p.connections} connections × ${p.durationS} s` +
        `${p.smoke ? ' (smoke)' : ''}; ${describeMachine(machineFacts(brokers))} (own broker); ` +
        `load average ${loadBefore}; times in ms`,
    );
  let x: Awaited<ReturnType<typeof run>>;
  try {
    x = await run(p, logDir, started, announce);
  } finally {
    await cleanUp(started, logDir);
  }
  const machine = machineFacts(x.brokers);
  printFigures(x, p.connections, p.durationS);
  const targets = targetLines(x);
  console.log('');
  printTable(
    ['target', 'measured', 'met'],
    targets.map((t) => [t.target, t.measured, t.met ? 'yes' : 'no']),
  );
  console.log(`taskapi and broker logs: ${logDir}; load average ${loadBefore} before, ${load1()} after`);
  writeResults('api', {
    params: p,
    machine,
    loadBefore,
    loadAfter: load1(),
    logDir,
    seeded: x.seeded,
    pausedEvery: PAUSED_EVERY,
    create: {
      valueBytes: x.create.valueBytes,
      rows: x.create.rows.map(({ ms, ...r }) => ({ ...r, n: ms.length, ms: summarize(ms) })),
    },
    list: {
      total: x.list.total,
      walk: { pages: x.list.walk.pages, ms: summarize(x.list.walk.ms) },
      rows: x.list.rows.map(({ ms, ...r }) => ({ ...r, n: ms.length, ms: summarize(ms) })),
    },
    rebuild: x.rebuild,
    load: x.load,
    targets,
  });
  if (x.load.some((l) => l.r.non2xx > 0 || l.r.errors > 0)) process.exitCode = 1;
}

if (values.child === 'bare') await childBare(values.canned ?? '');
else
  await main().then(
    // kafkajs may leave sockets closing; the figures are out, so do not wait for them.
    () => process.exit(process.exitCode ?? 0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
