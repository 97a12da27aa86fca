import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { waitFor } from './wait-for.js';

export const ROOT = resolve(import.meta.dirname, '../../..');

const BINS = {
  taskscheduler: resolve(ROOT, 'dist/src/scheduler/cli.js'),
  taskconsumer: resolve(ROOT, 'dist/src/consumer/cli.js'),
  taskapi: resolve(ROOT, 'dist/src/api/cli.js'),
} as const;

/** A started CLI (the built one, as a user runs it), with its output kept for assertions and diagnostics. */
export class RunningCli {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits until the output from character `from` on (default: all of it) matches. */
  async waitForOutput(re: RegExp, timeoutMs = 30_000, from = 0): Promise<void> {
    await waitFor(() => re.test(this.output.slice(from)), {
      timeoutMs,
      what: `${this.name} output ${re}\n--- output ---\n${this.output.slice(-3000)}`,
    });
  }

  signal(sig: NodeJS.Signals): void {
    if (this.alive) this.child.kill(sig);
  }
}

const running = new Set<RunningCli>();

export function startCli(
  bin: keyof typeof BINS,
  args: string[],
  env: Record<string, string> = {},
): RunningCli {
  const child = spawn(process.execPath, [BINS[bin], ...args], {
    cwd: ROOT,
    env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const cli = new RunningCli(bin, child);
  running.add(cli);
  void cli.exited.then(() => running.delete(cli));
  return cli;
}

/** Runs a CLI to completion. */
export async function runCli(
  bin: keyof typeof BINS,
  args: string[],
  timeoutMs = 30_000,
  env: Record<string, string> = {},
): Promise<{ code: number | null; output: string; stdout: string }> {
  const cli = startCli(bin, args, env);
  let stdout = '';
  cli.child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  const timer = setTimeout(() => cli.signal('SIGKILL'), timeoutMs);
  const { code } = await cli.exited;
  clearTimeout(timer);
  return { code, output: cli.output, stdout };
}

/** Kills every CLI a test started that is still alive (afterEach), and waits for them to be gone. */
export async function killAll(): Promise<void> {
  const all = [...running];
  for (const c of all) c.signal('SIGKILL');
  await Promise.all(all.map((c) => c.exited));
}
