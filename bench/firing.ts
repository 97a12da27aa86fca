/**
 * Firing precision benchmark: N schedules `* * * * * *` (every second) for a window of W seconds, run one after
 * another in this process by our GroupScheduler (publishing to Kafka), node-cron and croner.
 *
 * Lag = time the task is handed to the producer (ours: the task message's `firedAt`) or the callback starts
 * (peers) minus the scheduled instant. Ack lag (ours only) = broker ack minus the scheduled instant.
 * Only instants inside the window count towards missed; early fires and duplicates count over the whole run.
 *
 *   npm run bench:firing -- [--n 1000] [--window 20] [--smoke]      (env: BENCH_N, BENCH_WINDOW, BENCH_TOPIC,
 *                                                                   KAFKA_BROKERS, KAFKA_VERSION)
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Cron } from 'croner';
import { schedule as nodeCronSchedule } from 'node-cron';
import type { ScheduledTask } from 'node-cron';
import { GroupScheduler } from '../src/scheduler/group-scheduler.js';
import type { GroupSchedulerOptions } from '../src/scheduler/group-scheduler.js';
import { systemClock } from '../src/shared/clock.js';
import type { ScheduleEntry } from '../src/shared/config/schema.js';
import { KafkaClient } from '../src/shared/kafka/index.js';
import { silentLogger } from '../src/shared/logger.js';

const SPEC = '* * * * * *';
/** The project root: this file runs compiled, from dist/bench/. */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Params {
  n: number;
  windowS: number;
  smoke: boolean;
  brokers: string[];
  topic: string;
}

interface Summary {
  p50: number;
  p99: number;
  max: number;
}

interface Row {
  scheduler: string;
  version: string;
  n: number;
  /** Fires whose scheduled instant lies in the window. */
  fires: number;
  early: number;
  dup: number;
  missed: number;
  lagMs: Summary;
  ackLagMs?: Summary;
  /** Process CPU over the window, % of one core. */
  cpuPct: number;
  notes: string[];
}

/** One observed fire: which schedule, its scheduled instant, and when it was handed over / called back. */
interface Observation {
  job: number | string;
  scheduledMs: number;
  atMs: number;
}

function parseParams(): Params {
  const { values } = parseArgs({
    options: {
      n: { type: 'string' },
      window: { type: 'string' },
      smoke: { type: 'boolean', default: false },
    },
  });
  const smoke = values.smoke === true;
  const n = Number(values.n ?? process.env['BENCH_N'] ?? (smoke ? 100 : 1000));
  const windowS = Number(values.window ?? process.env['BENCH_WINDOW'] ?? (smoke ? 3 : 20));
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(windowS) || windowS < 1) {
    throw new Error(`--n and --window must be positive integers (got ${String(n)}, ${String(windowS)})`);
  }
  const brokers = (process.env['KAFKA_BROKERS'] ?? '127.0.0.1:9092').split(',').map((b) => b.trim());
  return { n, windowS, smoke, brokers, topic: process.env['BENCH_TOPIC'] ?? 'benchTopic' };
}

function summarize(values: number[]): Summary {
  if (values.length === 0) return { p50: NaN, p99: NaN, max: NaN };
  const s = Float64Array.from(values).sort();
  const at = (q: number): number => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? NaN };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const nextSecond = (ms: number): number => Math.ceil(ms / 1000) * 1000;

/** Early, duplicate and missed counts plus the lag summary of a run whose window is [from, to). */
function tally(
  name: string,
  version: string,
  n: number,
  obs: Observation[],
  from: number,
  to: number,
): Omit<Row, 'cpuPct' | 'notes'> {
  const seen = new Set<string>();
  let early = 0;
  let dup = 0;
  const lags: number[] = [];
  for (const o of obs) {
    const key = `${o.job}@${o.scheduledMs}`;
    if (seen.has(key)) dup++;
    seen.add(key);
    if (o.atMs < o.scheduledMs) early++;
    if (o.scheduledMs >= from && o.scheduledMs < to) lags.push(o.atMs - o.scheduledMs);
  }
  let inWindow = 0;
  for (const key of seen) {
    const t = Number(key.slice(key.lastIndexOf('@') + 1));
    if (t >= from && t < to) inWindow++;
  }
  const expected = (n * (to - from)) / 1000;
  return {
    scheduler: name,
    version,
    n,
    fires: lags.length,
    early,
    dup,
    missed: expected - inWindow,
    lagMs: summarize(lags),
  };
}

/** Arms (resolving to when arming finished), then waits out a window opening at a whole second; returns it and its CPU. */
async function timed(
  windowS: number,
  armedAt: () => Promise<number>,
): Promise<{ from: number; to: number; cpuPct: number }> {
  const from = nextSecond((await armedAt()) + 1);
  await sleep(from - Date.now());
  const cpu0 = process.cpuUsage();
  const to = from + windowS * 1000;
  await sleep(to - Date.now());
  const cpu = process.cpuUsage(cpu0);
  // Let the callbacks of the last instant in the window run before stopping.
  await sleep(500);
  return { from, to, cpuPct: ((cpu.user + cpu.system) / 1000 / (windowS * 1000)) * 100 };
}

async function runOurs(p: Params): Promise<Row> {
  const kafka = new KafkaClient({ brokers: p.brokers, logger: silentLogger, clientId: 'bench-firing' });
  const group = `bench-firing-${randomUUID()}`;
  const entries: ScheduleEntry[] = Array.from({ length: p.n }, (_, i) => ({
    id: `bench-${i}`,
    cron: SPEC,
    topic: p.topic,
    timeZone: 'UTC',
    enabled: true,
    misfire: 'skip',
    misfireWindowSeconds: 3600,
    processor: 'NoopProcessor',
    index: i,
  }));
  const ackLags: Array<{ scheduledMs: number; lag: number }> = [];
  const ackedIds = new Set<string>();
  let allAcked: () => void = () => undefined;
  const armed = new Promise<void>((resolve) => (allAcked = resolve));
  const onAcked: GroupSchedulerOptions['onAcked'] = (fires, ackedAtMs) => {
    for (const f of fires) {
      ackLags.push({ scheduledMs: f.scheduledFor, lag: ackedAtMs - f.scheduledFor });
      if (ackedIds.size < p.n) {
        ackedIds.add(f.entry.id);
        if (ackedIds.size === p.n) allAcked();
      }
    }
  };
  const s = new GroupScheduler({ kafka, entries, group, clock: systemClock, logger: silentLogger, onAcked });
  const notes: string[] = [];
  let win: { from: number; to: number; cpuPct: number };
  const t0 = Date.now();
  let t1 = t0;
  let t2 = t0;
  try {
    await s.start();
    // The window opens once every entry was fired and acked at least once (group joined, partitions taken).
    win = await timed(p.windowS, async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`only ${ackedIds.size} of ${p.n} entries fired within 60 s of start`)),
          60_000,
        );
      });
      await Promise.race([armed, timeout]).finally(() => clearTimeout(timer));
      t1 = Date.now();
      return t1;
    });
  } finally {
    t2 = Date.now();
    const unsent = await s.stop({ deadlineMs: 10_000 });
    if (unsent > 0) notes.push(`${unsent} fires not published at stop`);
  }
  const t3 = Date.now();
  notes.push(`start to all entries acked ${t1 - t0} ms, stop ${t3 - t2} ms`);
  const obs: Observation[] = [];
  for (const r of await kafka.readToEnd(p.topic, 120_000)) {
    if (!r.value) continue;
    const m = JSON.parse(r.value.toString('utf8')) as {
      scheduleId: string;
      scheduledFor: string;
      firedAt: string;
      scheduler?: { group?: string };
    };
    if (m.scheduler?.group !== group) continue;
    obs.push({ job: m.scheduleId, scheduledMs: Date.parse(m.scheduledFor), atMs: Date.parse(m.firedAt) });
  }
  notes.push(`read back ${obs.length} task records in ${Date.now() - t3} ms`);
  const row = tally('taskmanager', 'this tree', p.n, obs, win.from, win.to);
  const inWindow = ackLags.filter((a) => a.scheduledMs >= win.from && a.scheduledMs < win.to);
  if (inWindow.length !== row.fires)
    notes.push(`acked ${inWindow.length} in window vs ${row.fires} read back`);
  return { ...row, ackLagMs: summarize(inWindow.map((a) => a.lag)), cpuPct: win.cpuPct, notes };
}

async function runNodeCron(p: Params, version: string): Promise<Row> {
  const obs: Observation[] = [];
  const tasks: ScheduledTask[] = [];
  const quiet = {
    info: () => undefined,
    warn: () => undefined,
    error: () => undefined,
    debug: () => undefined,
  };
  let warnings = 0;
  const counting = { ...quiet, warn: () => void warnings++ };
  const win = await timed(p.windowS, async () => {
    for (let i = 0; i < p.n; i++) {
      // context.date is the scheduled slot (node-cron passes it in).
      tasks.push(
        nodeCronSchedule(
          SPEC,
          (ctx) => void obs.push({ job: i, scheduledMs: ctx.date.getTime(), atMs: Date.now() }),
          {
            logger: counting,
          },
        ),
      );
    }
    return Date.now();
  });
  for (const t of tasks) {
    await t.stop();
    await t.destroy();
  }
  const notes = warnings > 0 ? [`${warnings} warnings from node-cron (missed executions)`] : [];
  return { ...tally('node-cron', version, p.n, obs, win.from, win.to), cpuPct: win.cpuPct, notes };
}

async function runCroner(p: Params, version: string): Promise<Row> {
  const obs: Observation[] = [];
  const jobs: Cron[] = [];
  const win = await timed(p.windowS, async () => {
    for (let i = 0; i < p.n; i++) {
      // croner never calls back before the target; the instant is the second the callback runs in.
      jobs.push(
        new Cron(SPEC, () => {
          const now = Date.now();
          obs.push({ job: i, scheduledMs: Math.floor(now / 1000) * 1000, atMs: now });
        }),
      );
    }
    return Date.now();
  });
  for (const j of jobs) j.stop();
  return { ...tally('croner', version, p.n, obs, win.from, win.to), cpuPct: win.cpuPct, notes: [] };
}

function versionOf(pkg: string): string {
  try {
    const file = join(ROOT, 'node_modules', pkg, 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? '?';
  } catch {
    return '?';
  }
}

function printTable(rows: Row[]): void {
  const f = (x: number | undefined): string =>
    x === undefined || Number.isNaN(x) ? '-' : String(Math.round(x));
  const head = [
    'scheduler',
    'N',
    'fires',
    'early',
    'dup',
    'missed',
    'lag p50',
    'p99',
    'max',
    'ack p50',
    'ack p99',
    'CPU %',
  ];
  const body = rows.map((r) => [
    `${r.scheduler} ${r.version}`,
    String(r.n),
    String(r.fires),
    String(r.early),
    String(r.dup),
    String(r.missed),
    f(r.lagMs.p50),
    f(r.lagMs.p99),
    f(r.lagMs.max),
    f(r.ackLagMs?.p50),
    f(r.ackLagMs?.p99),
    r.cpuPct.toFixed(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const b of body) console.log(line(b));
  for (const r of rows) for (const n of r.notes) console.log(`note (${r.scheduler}): ${n}`);
}

async function main(): Promise<void> {
  const p = parseParams();
  const machine = {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? '?',
    node: process.version,
    kafka: process.env['KAFKA_VERSION'] ?? '4.3.1',
    brokers: p.brokers.join(','),
  };
  console.log(
    `firing: N=${p.n} schedules '${SPEC}', window ${p.windowS} s${p.smoke ? ' (smoke)' : ''}; ` +
      `${machine.cores} cores, Node ${machine.node}, Kafka ${machine.kafka} at ${machine.brokers}; lags in ms`,
  );
  const rows = [
    await runOurs(p),
    await runNodeCron(p, versionOf('node-cron')),
    await runCroner(p, versionOf('croner')),
  ];
  printTable(rows);
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `firing-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ at: new Date().toISOString(), params: p, machine, rows }, null, 2)}\n`,
  );
  console.log(`results: ${file}`);
  const bad = rows.filter((r) => r.scheduler === 'taskmanager' && (r.early > 0 || r.dup > 0 || r.missed > 0));
  if (bad.length > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
