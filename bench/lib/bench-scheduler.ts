/**
 * A real `taskscheduler -s none` for the API-task benchmarks: its own process with its metrics on a port of its
 * own, read as one number per metric name (summed over labels; of the schedules gauge, the armed ones only).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { profiling, ROOT } from '../../test/kit/processes.js';
import { sleep, waitFor } from '../../test/kit/wait.js';

export interface Scheduler {
  child: ChildProcess;
  output: () => string;
  metrics: () => Promise<Map<string, number>>;
}

/** The schedulers started, killed when the benchmark is. */
const children = new Set<ChildProcess>();

/** SIGKILLs every scheduler still running (each by the pid we spawned). */
export function killSchedulers(): void {
  for (const c of children) c.kill('SIGKILL');
}

/**
 * Ends every scheduler still running: SIGKILL, but a profiled one (CPU_PROF_FOR=taskscheduler) gets SIGTERM and up to
 * 15 s to exit first, as its profile is written at exit.
 */
export async function endSchedulers(): Promise<void> {
  if (profiling('taskscheduler').length > 0) {
    const exits = [...children].map((c) => new Promise((r) => c.once('exit', r)));
    for (const c of children) c.kill('SIGTERM');
    await Promise.race([Promise.all(exits), sleep(15_000)]);
  }
  killSchedulers();
}

/**
 * Starts `node <cli> -s none --group <group>` against `brokers` and resolves once it reports ready; with
 * CPU_PROF_FOR=taskscheduler (and CPU_PROF_DIR), it writes a CPU profile at exit (test/kit/processes.ts).
 */
export async function startScheduler(cli: string, group: string, brokers: string[]): Promise<Scheduler> {
  const child = spawn(
    process.execPath,
    [
      ...profiling('taskscheduler'),
      cli,
      '-b',
      brokers.join(','),
      '-s',
      'none',
      '--group',
      group,
      '--metrics-port',
      '0',
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1' },
    },
  );
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const re = /metrics and health on http:\/\/[^:\s]+:(\d+)\//;
  await waitFor(() => re.test(out), { timeoutMs: 30_000, what: () => `scheduler metrics port\n${out}` });
  const base = `http://127.0.0.1:${re.exec(out)?.[1] ?? '?'}`;
  const metrics = async (): Promise<Map<string, number>> => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const m = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const at = line.lastIndexOf(' ');
      const key = line.slice(0, at);
      const name = key.includes('{') ? key.slice(0, key.indexOf('{')) : key;
      if (name === 'taskmanager_scheduler_schedules' && !key.includes('state="armed"')) continue;
      m.set(name, (m.get(name) ?? 0) + Number(line.slice(at + 1)));
    }
    return m;
  };
  await waitFor(async () => (await metrics()).get('taskmanager_scheduler_ready') === 1, {
    timeoutMs: 60_000,
    what: () => `scheduler ready\n${out}`,
  });
  return { child, output: () => out, metrics };
}

/** The lowest heap over `ms`: close to the heap after a GC. */
export async function restingHeap(s: Scheduler, ms = 6000): Promise<number> {
  let low = Infinity;
  for (const until = Date.now() + ms; Date.now() < until; await sleep(200))
    low = Math.min(low, (await s.metrics()).get('nodejs_heap_size_used_bytes') ?? Infinity);
  return low;
}

/** SIGTERM, and resolves once it exited. */
export async function stopScheduler(s: Scheduler): Promise<void> {
  const exited = new Promise((r) => s.child.once('exit', r));
  s.child.kill('SIGTERM');
  await exited;
}
