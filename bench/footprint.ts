/**
 * Footprint: heap per armed schedule and time to load and arm N schedules (ours from a schedule file, the peers
 * from the same specs), and the CPU of a scheduler that has nothing to do most of the time (10k schedules firing
 * once a minute, all at second 0). Every measurement runs in a fresh child process.
 *
 * Heap = `heapUsed` after a full GC with the schedules armed minus before, over N. Ours counts everything the
 * scheduler keeps per schedule: the validated entry, its place in the fire loop, its compiled spec (shared by
 * entries with the same spec). Idle CPU: ours is the real `taskscheduler` process connected to Kafka (group
 * heartbeats, paused state reader), read from /proc; the peers run their schedules in a child process too.
 *
 *   npm run bench:footprint -- [--n 100000] [--peers-n 10000] [--idle-n 10000] [--idle-window 60] [--smoke]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Cron } from 'croner';
import { schedule as nodeCronSchedule } from 'node-cron';
import { FireLoop } from '../src/scheduler/fire-loop.js';
import { systemClock } from '../src/shared/clock.js';
import { loadScheduleFile } from '../src/shared/config/load.js';
import { silentLogger } from '../src/shared/logger.js';
import { processCpuMs } from './lib/child-cpu.js';
import {
  benchBrokers,
  cell,
  describeMachine,
  machineFacts,
  printTable,
  versionOf,
  writeResults,
} from './lib/report.js';
import { sleep } from '../test/kit/wait.js';
import { ROOT } from '../test/kit/processes.js';

type Lib = 'ours' | 'node-cron' | 'croner';
const SELF = fileURLToPath(import.meta.url);

/** 3,600 distinct specs: schedule i fires hourly at minute ⌊i/60⌋ mod 60, second i mod 60. */
const spreadSpec = (i: number): string => `${i % 60} ${Math.floor(i / 60) % 60} * * * *`;

/** A schedule file in the old tool's format, as operators write it. */
async function writeScheduleFile(dir: string, n: number, spec: (i: number) => string): Promise<string> {
  const file = join(dir, `schedule-${n}.json`);
  const entries = Array.from({ length: n }, (_, i) => ({
    Id: `s-${i}`,
    Cron: spec(i),
    Topic: process.env['BENCH_TOPIC'] ?? 'benchTopic',
    Misfire: 'skip',
    TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor' },
  }));
  await writeFile(file, JSON.stringify(entries));
  return file;
}

// ---- children ---------------------------------------------------------------------------------------------

const gc = (): void => {
  const f = (globalThis as { gc?: () => void }).gc;
  if (!f) throw new Error('run with --expose-gc');
  f();
  f();
};

/** Arms N schedules in this process; prints `{ heapPerSchedule, armMs }`. */
async function childArm(lib: Lib, n: number, file: string): Promise<void> {
  gc();
  const before = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const keep: unknown[] = [];
  if (lib === 'ours') {
    const entries = await loadScheduleFile(file);
    const loop = new FireLoop({ clock: systemClock, logger: silentLogger, onFires: () => undefined });
    // As the group scheduler arms a partition's entries: all after the same instant.
    const now = Date.now();
    for (const e of entries) loop.add(e, now);
    loop.start();
    keep.push(loop);
  } else if (lib === 'croner') {
    for (let i = 0; i < n; i++) keep.push(new Cron(spreadSpec(i), () => undefined));
  } else {
    for (let i = 0; i < n; i++) keep.push(nodeCronSchedule(spreadSpec(i), () => undefined));
  }
  const armMs = performance.now() - t0;
  gc();
  const heapPerSchedule = (process.memoryUsage().heapUsed - before) / n;
  console.log(JSON.stringify({ heapPerSchedule, armMs, kept: keep.length }));
  process.exit(0);
}

/** A peer with N once-a-minute schedules (second 0), alive until killed. */
function childIdlePeer(lib: Lib, n: number): void {
  for (let i = 0; i < n; i++) {
    if (lib === 'croner') new Cron('0 * * * * *', () => undefined);
    else nodeCronSchedule('0 * * * * *', () => undefined);
  }
  console.log('{"armed":true}');
}

// ---- parent -----------------------------------------------------------------------------------------------

/** Runs this file as a child and returns its first JSON line. */
function runChild(args: string[], nodeArgs: string[] = []): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, SELF, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || !line) reject(new Error(`child ${args.join(' ')} exited ${code}: ${out}`));
      else resolve(JSON.parse(line) as Record<string, number>);
    });
  });
}

/**
 * CPU of a running process (its pid) over [startOffset, startOffset + windowMs) after `t0`, as % of one core,
 * plus the same over the part of the window outside the second after each whole minute (between fires).
 */
async function cpuOf(pid: number, windowS: number): Promise<{ all: number; between: number }> {
  const at = (): number => processCpuMs(pid) ?? NaN;
  // Start at a whole minute + 1 s so the window holds exactly windowS/60 firing seconds.
  const minute = 60_000;
  const start = Math.ceil((Date.now() + 5000) / minute) * minute + 1000;
  await sleep(start - Date.now());
  const c0 = at();
  let quietCpu = 0;
  let quietMs = 0;
  for (let t = start; t < start + windowS * 1000;) {
    // Between fires: from second 1 to second 59 of each minute.
    const quietEnd = Math.min(Math.floor(t / minute) * minute + 59_000, start + windowS * 1000);
    const q0 = at();
    await sleep(quietEnd - Date.now());
    quietCpu += at() - q0;
    quietMs += quietEnd - t;
    t = Math.floor(t / minute) * minute + minute + 1000;
    await sleep(Math.min(t, start + windowS * 1000) - Date.now());
  }
  const all = ((at() - c0) / (windowS * 1000)) * 100;
  return { all, between: (quietCpu / quietMs) * 100 };
}

interface IdleRow {
  who: string;
  all: number;
  between: number;
}

async function idleOurs(file: string, windowS: number): Promise<IdleRow> {
  const child = spawn(
    process.execPath,
    [join(ROOT, 'dist/src/scheduler/cli.js'), '--brokers', benchBrokers().join(','), '--schedule', file],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } },
  );
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  try {
    const cpu = await cpuOf(child.pid ?? -1, windowS);
    return { who: 'taskscheduler (this tree, connected to Kafka)', ...cpu };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
    if (/error/i.test(log)) console.log(`taskscheduler log:\n${log.slice(-2000)}`);
  }
}

async function idlePeer(lib: Lib, n: number, windowS: number): Promise<IdleRow> {
  const child = spawn(process.execPath, [SELF, '--child', 'idle', '--lib', lib, '--n', String(n)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((r) => child.stdout.once('data', () => r()));
  try {
    return { who: `${lib} ${versionOf(lib)}`, ...(await cpuOf(child.pid ?? -1, windowS)) };
  } finally {
    child.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      lib: { type: 'string' },
      file: { type: 'string' },
      n: { type: 'string' },
      'peers-n': { type: 'string' },
      'idle-n': { type: 'string' },
      'idle-window': { type: 'string' },
      smoke: { type: 'boolean', default: false },
    },
  });
  const lib = (values.lib ?? 'ours') as Lib;
  if (values.child === 'arm') return childArm(lib, Number(values.n), values.file ?? '');
  if (values.child === 'idle') return childIdlePeer(lib, Number(values.n));

  const smoke = values.smoke === true;
  const n = Number(values.n ?? (smoke ? 2000 : 100_000));
  const peersN = Number(values['peers-n'] ?? (smoke ? 2000 : 10_000));
  const idleN = Number(values['idle-n'] ?? (smoke ? 200 : 10_000));
  const idleWindowS = Number(values['idle-window'] ?? (smoke ? 0 : 60));
  const machine = machineFacts(benchBrokers());
  console.log(
    `footprint: arm ${n} (ours) and ${peersN} (peers) schedules, idle CPU with ${idleN} once-a-minute schedules ` +
      `over ${idleWindowS} s${smoke ? ' (smoke)' : ''}; ${describeMachine(machine)}`,
  );
  const dir = await mkdtemp(join(tmpdir(), 'bench-footprint-'));
  try {
    const arm: Array<{ who: string; n: number; heapPerSchedule: number; armMs: number }> = [];
    const sizes = [...new Set([peersN, n])];
    for (const size of sizes) {
      const file = await writeScheduleFile(dir, size, spreadSpec);
      const r = await runChild(
        ['--child', 'arm', '--lib', 'ours', '--n', String(size), '--file', file],
        ['--expose-gc'],
      );
      arm.push({
        who: 'taskmanager (this tree)',
        n: size,
        heapPerSchedule: r['heapPerSchedule'] ?? NaN,
        armMs: r['armMs'] ?? NaN,
      });
    }
    for (const peer of ['node-cron', 'croner'] as const) {
      const r = await runChild(['--child', 'arm', '--lib', peer, '--n', String(peersN)], ['--expose-gc']);
      arm.push({
        who: `${peer} ${versionOf(peer)}`,
        n: peersN,
        heapPerSchedule: r['heapPerSchedule'] ?? NaN,
        armMs: r['armMs'] ?? NaN,
      });
    }
    printTable(
      ['arm', 'N', 'heap per schedule', 'load + arm'],
      arm.map((a) => [
        a.who,
        String(a.n),
        `${(a.heapPerSchedule / 1024).toFixed(2)} KB`,
        `${cell(a.armMs)} ms`,
      ]),
    );
    const idle: IdleRow[] = [];
    if (idleWindowS > 0) {
      const file = await writeScheduleFile(dir, idleN, () => '0 * * * * *');
      idle.push(await idleOurs(file, idleWindowS));
      for (const peer of ['node-cron', 'croner'] as const)
        idle.push(await idlePeer(peer, idleN, idleWindowS));
      printTable(
        ['idle', 'N', `CPU over ${idleWindowS} s`, 'CPU between fires'],
        idle.map((r) => [r.who, String(idleN), `${r.all.toFixed(2)} %`, `${r.between.toFixed(2)} %`]),
      );
    }
    writeResults('footprint', { params: { n, peersN, idleN, idleWindowS, smoke }, machine, arm, idle });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
