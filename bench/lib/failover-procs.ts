/**
 * The processes the failover and API benchmarks run: the built CLIs (each logging to its own file) and a private
 * broker of `scripts/kafka-local` on free ports (the broker-restart scenario stops and starts it).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT, sleep } from './report.js';

const BINS = {
  taskscheduler: join(ROOT, 'dist/src/scheduler/cli.js'),
  taskconsumer: join(ROOT, 'dist/src/consumer/cli.js'),
  taskapi: join(ROOT, 'dist/src/api/cli.js'),
} as const;

export type CliName = keyof typeof BINS;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  atMs: number;
  /** True when we SIGKILLed it because it did not exit in time. */
  forced: boolean;
}

/** A started CLI whose stdout and stderr go to `logFile`. */
export class Cli {
  readonly exited: Promise<Exit>;

  constructor(
    readonly name: CliName,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((r) =>
      child.on('exit', (code, signal) => r({ code, signal, atMs: Date.now(), forced: false })),
    );
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends a signal to this process (by its own pid) while it runs. */
  signal(sig: NodeJS.Signals): void {
    if (this.alive) this.child.kill(sig);
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** WARN and ERROR lines of its log (our text format puts the level second). */
  problems(): string[] {
    return this.log()
      .split('\n')
      .filter((l) => /^\S+ (WARN|ERROR) /.test(l));
  }
}

/** Every CLI this process started and that may still run: killed on the way out, whatever happened. */
const running = new Set<Cli>();

export function startCli(name: CliName, args: string[], logFile: string): Cli {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(process.execPath, [BINS[name], ...args], {
      cwd: ROOT,
      env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1' },
      stdio: ['ignore', fd, fd],
    });
    const cli = new Cli(name, child, logFile);
    running.add(cli);
    void cli.exited.then(() => running.delete(cli));
    return cli;
  } finally {
    closeSync(fd);
  }
}

/** SIGKILLs every CLI still running (each by the pid we spawned) and waits until they are gone. */
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
  if (first !== 'late') return first;
  cli.signal('SIGKILL');
  return { ...(await cli.exited), forced: true };
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

/** Runs a script to completion without blocking the event loop (readers keep reading meanwhile). */
function runScript(
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', args, { cwd: ROOT, env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out: out.trim() });
    });
  });
}

/**
 * A broker of our own (`scripts/kafka-local` with its own ports and data dir), never the shared one: the
 * broker-restart scenario stops and starts it; the API benchmark fills its taskmanager.tasks.
 */
export class OwnBroker {
  private started = false;

  private constructor(
    readonly port: number,
    private readonly env: Record<string, string>,
    private readonly dataDir: string,
  ) {}

  static async create(dir: string): Promise<OwnBroker> {
    const port = await freePort();
    let controller = await freePort();
    while (controller === port) controller = await freePort();
    const dataDir = join(dir, 'broker-data');
    const env = {
      KAFKA_LOCAL_PORT: String(port),
      KAFKA_LOCAL_CONTROLLER_PORT: String(controller),
      KAFKA_LOCAL_DATA: dataDir,
    };
    return new OwnBroker(port, env, dataDir);
  }

  get brokers(): string[] {
    return [`127.0.0.1:${this.port}`];
  }

  private async kafkaLocal(cmd: 'start' | 'stop'): Promise<string> {
    this.started ||= cmd === 'start';
    const r = await runScript([join(ROOT, 'scripts/kafka-local'), cmd], this.env, 150_000);
    if (r.code !== 0)
      throw new Error(`scripts/kafka-local ${cmd} (port ${this.port}) exited ${r.code}: ${r.out}`);
    return r.out;
  }

  /** Starts it and waits until a client can use it (what `kafka-local start` waits for). */
  start(): Promise<string> {
    return this.kafkaLocal('start');
  }

  stop(): Promise<string> {
    return this.kafkaLocal('stop');
  }

  /** The topics every program needs (docs/messages-and-topics.md#topics), made by the script users run. */
  async createSharedTopics(): Promise<void> {
    const r = await runScript(
      [join(ROOT, 'scripts/create-topics.sh'), '--bootstrap-server', this.brokers.join(',')],
      {},
      120_000,
    );
    if (r.code !== 0) throw new Error(`scripts/create-topics.sh exited ${r.code}: ${r.out}`);
  }

  /** Stops it (if this process ever started it), keeps its log in `logDir` and deletes its data. */
  async dispose(logDir: string): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.stop().catch((err: unknown) => console.error(`could not stop our broker: ${String(err)}`));
    const log = join(this.dataDir, 'kafka.log');
    if (existsSync(log)) copyFileSync(log, join(logDir, 'own-broker.log'));
    // The script may still hold the data dir's lock for a moment after the broker is gone.
    for (let i = 0; i < 10 && existsSync(this.dataDir); i++) {
      try {
        rmSync(this.dataDir, { recursive: true, force: true });
      } catch {
        await sleep(200);
      }
    }
  }
}
