/**
 * A Kafka broker of our own for one test file or benchmark: `scripts/kafka-local` on free ports with its own data
 * dir, never the shared one, so a test may stop and restart it, or fill its topics, and delete it all afterwards.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, ROOT } from './processes.js';
import { poll } from './wait.js';

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

  /** `ports`: the broker's and its controller's (a machine shared by several people gives each their own). */
  static async create(dir: string, ports?: { port: number; controller: number }): Promise<OwnBroker> {
    const port = ports?.port ?? (await freePort());
    let controller = ports?.controller ?? (await freePort());
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
    // The script may still hold the data dir's lock for a moment after the broker is gone: try again until it goes.
    await poll(
      () => {
        rmSync(this.dataDir, { recursive: true, force: true });
        return !existsSync(this.dataDir) || undefined;
      },
      2000,
      200,
    );
  }
}
