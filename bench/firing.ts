/**
 * Firing precision benchmark: N schedules run for a window of W seconds, one after another in this process, by our
 * GroupScheduler (publishing to Kafka), node-cron and croner, with the same specs.
 *
 *   --spread minute (default): schedule i fires every minute at second i mod 60 (N/60 fires a second);
 *   --spread second: every schedule fires every second (N fires a second).
 *
 * Lag = time the task is handed to the producer (ours: the task message's `firedAt`) or the callback starts
 * (peers) minus the scheduled instant. Ack lag (ours only) = transaction committed minus the scheduled instant.
 * Only instants inside the window count towards missed; early fires and duplicates count over the whole run.
 *
 *   npm run bench:firing -- [--n 1000] [--window 60] [--spread minute|second] [--only ours] [--smoke]
 *   (env: BENCH_TOPIC, KAFKA_BROKERS, KAFKA_CONFIG, KAFKA_VERSION)
 */
import { parseArgs } from 'node:util';
import { Cron } from 'croner';
import { schedule as nodeCronSchedule } from 'node-cron';
import type { ScheduledTask } from 'node-cron';
import type { GroupSchedulerOptions } from '../src/scheduler/group-scheduler.js';
import { benchEntries, readPublished, startOurs } from './lib/ours.js';
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
import { sleep } from '../test/kit/wait.js';

type Spread = 'minute' | 'second';

interface Params {
  n: number;
  windowS: number;
  spread: Spread;
  only: string | undefined;
  smoke: boolean;
  brokers: string[];
  topic: string;
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
  job: number;
  scheduledMs: number;
  atMs: number;
}

function parseParams(): Params {
  const { values } = parseArgs({
    options: {
      n: { type: 'string' },
      window: { type: 'string' },
      spread: { type: 'string', default: 'minute' },
      only: { type: 'string' },
      smoke: { type: 'boolean', default: false },
    },
  });
  const smoke = values.smoke === true;
  const spread = values.spread as Spread;
  if (spread !== 'minute' && spread !== 'second') throw new Error(`--spread must be minute or second`);
  const n = Number(values.n ?? (smoke ? 120 : 1000));
  const windowS = Number(values.window ?? (smoke ? 3 : spread === 'minute' ? 60 : 20));
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(windowS) || windowS < 1) {
    throw new Error(`--n and --window must be positive integers (got ${String(n)}, ${String(windowS)})`);
  }
  return {
    n,
    windowS,
    spread,
    only: values.only,
    smoke,
    brokers: benchBrokers(),
    topic: process.env['BENCH_TOPIC'] ?? 'benchTopic',
  };
}

/** The spec of schedule i. */
function specOf(spread: Spread, i: number): string {
  return spread === 'second' ? '* * * * * *' : `${i % 60} * * * * *`;
}

/** Whether schedule i is due at the whole second `ms`. */
function dueAt(spread: Spread, i: number, ms: number): boolean {
  return spread === 'second' || (ms / 1000) % 60 === i % 60;
}

const nextSecond = (ms: number): number => Math.ceil(ms / 1000) * 1000;

/** Early, duplicate and missed counts plus the lag summary of a run whose window is [from, to). */
function tally(
  name: string,
  version: string,
  p: Params,
  obs: Observation[],
  from: number,
  to: number,
): Omit<Row, 'cpuPct' | 'notes'> {
  const seen = new Set<string>();
  let early = 0;
  let dup = 0;
  const lags: number[] = [];
  let inWindow = 0;
  for (const o of obs) {
    const key = `${o.job}@${o.scheduledMs}`;
    if (seen.has(key)) dup++;
    else if (o.scheduledMs >= from && o.scheduledMs < to && dueAt(p.spread, o.job, o.scheduledMs)) inWindow++;
    seen.add(key);
    if (o.atMs < o.scheduledMs) early++;
    if (o.scheduledMs >= from && o.scheduledMs < to) lags.push(o.atMs - o.scheduledMs);
  }
  let expected = 0;
  for (let t = from; t < to; t += 1000) for (let i = 0; i < p.n; i++) if (dueAt(p.spread, i, t)) expected++;
  return {
    scheduler: name,
    version,
    n: p.n,
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
  const cpuPct = cpuPercent(cpu0, windowS * 1000);
  // Let the callbacks of the last instant in the window run before stopping.
  await sleep(500);
  return { from, to, cpuPct };
}

async function runOurs(p: Params): Promise<Row> {
  const entries = benchEntries(
    Array.from({ length: p.n }, (_, i) => specOf(p.spread, i)),
    p.topic,
  );
  const ackLags: Array<{ scheduledMs: number; lag: number }> = [];
  const onAcked: GroupSchedulerOptions['onAcked'] = (fires, ackedAtMs) => {
    for (const f of fires) ackLags.push({ scheduledMs: f.scheduledFor, lag: ackedAtMs - f.scheduledFor });
  };
  const notes: string[] = [];
  let run: Awaited<ReturnType<typeof startOurs>> | undefined;
  const win = await timed(p.windowS, async () => {
    run = await startOurs(p.brokers, entries, onAcked, undefined, benchConnection());
    return Date.now();
  });
  if (!run) throw new Error('unreachable');
  const t2 = Date.now();
  const unsent = await run.scheduler.stop({ deadlineMs: 10_000 });
  if (unsent > 0) notes.push(`${unsent} fires not published at stop`);
  const t3 = Date.now();
  notes.push(`start to ready ${run.readyMs} ms, stop ${t3 - t2} ms`);
  const published = await readPublished(run.kafka, p.topic, run.group);
  const obs = published.map((m) => ({
    job: Number(m.scheduleId.slice('bench-'.length)),
    scheduledMs: m.scheduledMs,
    atMs: m.firedMs,
  }));
  notes.push(`read back ${obs.length} task records in ${Date.now() - t3} ms`);
  const row = tally('taskmanager', 'this tree', p, obs, win.from, win.to);
  const inWindow = ackLags.filter((a) => a.scheduledMs >= win.from && a.scheduledMs < win.to);
  if (inWindow.length !== row.fires)
    notes.push(`acked ${inWindow.length} in window vs ${row.fires} read back`);
  return { ...row, ackLagMs: summarize(inWindow.map((a) => a.lag)), cpuPct: win.cpuPct, notes };
}

async function runNodeCron(p: Params, version: string): Promise<Row> {
  const obs: Observation[] = [];
  const tasks: ScheduledTask[] = [];
  let warnings = 0;
  const logger = {
    info: () => undefined,
    warn: () => void warnings++,
    error: () => undefined,
    debug: () => undefined,
  };
  const win = await timed(p.windowS, async () => {
    for (let i = 0; i < p.n; i++) {
      // context.date is the scheduled slot (node-cron passes it in).
      const onTick = (ctx: { date: Date }): void =>
        void obs.push({ job: i, scheduledMs: ctx.date.getTime(), atMs: Date.now() });
      tasks.push(nodeCronSchedule(specOf(p.spread, i), onTick, { logger }));
    }
    return Date.now();
  });
  for (const t of tasks) {
    await t.stop();
    await t.destroy();
  }
  const notes = warnings > 0 ? [`${warnings} warnings from node-cron (missed executions)`] : [];
  return { ...tally('node-cron', version, p, obs, win.from, win.to), cpuPct: win.cpuPct, notes };
}

async function runCroner(p: Params, version: string): Promise<Row> {
  const obs: Observation[] = [];
  const jobs: Cron[] = [];
  const win = await timed(p.windowS, async () => {
    for (let i = 0; i < p.n; i++) {
      // croner never calls back before the target; the instant is the second the callback runs in.
      const onTick = (): void => {
        const now = Date.now();
        obs.push({ job: i, scheduledMs: Math.floor(now / 1000) * 1000, atMs: now });
      };
      jobs.push(new Cron(specOf(p.spread, i), onTick));
    }
    return Date.now();
  });
  for (const j of jobs) j.stop();
  return { ...tally('croner', version, p, obs, win.from, win.to), cpuPct: win.cpuPct, notes: [] };
}

function printRows(rows: Row[]): void {
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
  ];
  printTable(
    [...head, 'CPU %'],
    rows.map((r) => [
      `${r.scheduler} ${r.version}`,
      String(r.n),
      String(r.fires),
      String(r.early),
      String(r.dup),
      String(r.missed),
      cell(r.lagMs.p50),
      cell(r.lagMs.p99),
      cell(r.lagMs.max),
      cell(r.ackLagMs?.p50),
      cell(r.ackLagMs?.p99),
      r.cpuPct.toFixed(1),
    ]),
  );
  for (const r of rows) for (const n of r.notes) console.log(`note (${r.scheduler}): ${n}`);
}

async function main(): Promise<void> {
  const p = parseParams();
  const machine = machineFacts(p.brokers);
  console.log(
    `firing: N=${p.n} schedules, spread ${p.spread} ('${specOf(p.spread, 7)}' for schedule 7), ` +
      `window ${p.windowS} s${p.smoke ? ' (smoke)' : ''}; ${describeMachine(machine)}; lags in ms`,
  );
  const runners: Array<[string, () => Promise<Row>]> = [
    ['ours', () => runOurs(p)],
    ['node-cron', () => runNodeCron(p, versionOf('node-cron'))],
    ['croner', () => runCroner(p, versionOf('croner'))],
  ];
  const rows: Row[] = [];
  for (const [name, run] of runners) if (!p.only || p.only === name) rows.push(await run());
  printRows(rows);
  writeResults('firing', { params: p, machine, rows });
  const bad = rows.filter((r) => r.scheduler === 'taskmanager' && (r.early > 0 || r.dup > 0 || r.missed > 0));
  if (bad.length > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
