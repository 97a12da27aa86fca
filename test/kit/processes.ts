/**
 * The programs tests and benchmarks start: the built CLIs (as a user runs them) and the built benchmarks, with
 * their output kept in memory or in a log file, and every one still running killed on the way out.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { waitFor } from './wait.js';

/** The project root, from test/kit/ (vitest) or dist/test/kit/ (benchmarks, compiled): where package.json is. */
function projectRoot(): string {
  let dir = import.meta.dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${import.meta.dirname}`);
    dir = up;
  }
  return dir;
}

export const ROOT = projectRoot();

const BINS = {
  taskscheduler: join(ROOT, 'dist/src/scheduler/cli.js'),
  taskconsumer: join(ROOT, 'dist/src/consumer/cli.js'),
  taskapi: join(ROOT, 'dist/src/api/cli.js'),
} as const;

export type CliName = keyof typeof BINS;

/** How a process ended, as Node reports it (what tests compare). */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** An exit as {@link exitWithin} reports it: when, and whether we had to force it. */
export interface Exit extends ProcessExit {
  atMs: number;
  /** True when we SIGKILLed it because it did not exit in time. */
  forced: boolean;
}

export interface StartOptions {
  /** Over the environment of this process. */
  env?: Record<string, string>;
  /** Where stdout and stderr go (appended); by default they are kept in memory. */
  logFile?: string;
}

/** A started program, with its output (kept in memory, or read from its log file) for assertions and diagnostics. */
export class Cli {
  readonly exited: Promise<ProcessExit>;
  /** `Date.now()` when it exited; undefined while it runs. */
  exitedAtMs: number | undefined;
  private kept = '';

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile?: string,
  ) {
    child.stdout?.on('data', (d: Buffer) => (this.kept += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.kept += d.toString()));
    this.exited = new Promise((r) =>
      child.on('exit', (code, signal) => {
        this.exitedAtMs = Date.now();
        r({ code, signal });
      }),
    );
  }

  /** stdout and stderr so far, interleaved as they came. */
  get output(): string {
    if (this.logFile === undefined) return this.kept;
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
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
      what: () => `${this.name} output ${re}\n--- output ---\n${this.output.slice(-3000)}`,
    });
  }

  /** Sends a signal to this process (by its own pid) while it runs. */
  signal(sig: NodeJS.Signals): void {
    if (this.alive) this.child.kill(sig);
  }

  /** WARN and ERROR lines of its output (our text format puts the level second). */
  problems(): string[] {
    return this.output.split('\n').filter((l) => /^\S+ (WARN|ERROR) /.test(l));
  }
}

/** Every program this process started and that may still run: killed on the way out, whatever happened. */
const running = new Set<Cli>();

/** Starts `node <script> <args>` from the project root. */
export function startNode(name: string, script: string, args: string[], options: StartOptions = {}): Cli {
  const fd = options.logFile === undefined ? undefined : openSync(options.logFile, 'a');
  try {
    const child = spawn(process.execPath, [...profiling(name), script, ...args], {
      cwd: ROOT,
      env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1', ...options.env },
      stdio: ['ignore', fd ?? 'pipe', fd ?? 'pipe'],
    });
    const cli = new Cli(name, child, options.logFile);
    running.add(cli);
    void cli.exited.then(() => running.delete(cli));
    return cli;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * `--cpu-prof` for the programs named in env CPU_PROF_FOR (comma-separated, e.g. `taskapi,taskscheduler`), writing
 * into CPU_PROF_DIR (default the working directory): a profile of a program as a test or benchmark runs it.
 */
export function profiling(name: string): string[] {
  const names = process.env.CPU_PROF_FOR?.split(',') ?? [];
  if (!names.includes(name)) return [];
  return ['--cpu-prof', ...(process.env.CPU_PROF_DIR ? ['--cpu-prof-dir', process.env.CPU_PROF_DIR] : [])];
}

/** Starts one of the built CLIs (dist/src/…/cli.js). */
export function startCli(name: CliName, args: string[], options: StartOptions = {}): Cli {
  return startNode(name, BINS[name], args, options);
}

/** Starts a built benchmark, `dist/bench/<name>.js`. */
export function startBench(name: string, args: string[], options: StartOptions = {}): Cli {
  return startNode(`bench/${name}`, join(ROOT, `dist/bench/${name}.js`), args, options);
}

/** SIGKILLs every program still running (each by the pid we spawned) and waits until they are gone. */
export async function killAll(): Promise<void> {
  const all = [...running];
  for (const c of all) c.signal('SIGKILL');
  await Promise.all(all.map((c) => c.exited));
}

/** Resolves with the exit, or SIGKILLs the process after `ms` and says so in `forced`. */
export async function exitWithin(cli: Cli, ms: number): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), ms)));
  const first = await Promise.race([cli.exited, late]).finally(() => clearTimeout(timer));
  if (first !== 'late') return { ...first, atMs: cli.exitedAtMs ?? Date.now(), forced: false };
  cli.signal('SIGKILL');
  const exit = await cli.exited;
  return { ...exit, atMs: cli.exitedAtMs ?? Date.now(), forced: true };
}

/** A TCP port nobody listens on right now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/** True while the pid names a process; signal 0 checks without touching it. */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
