/**
 * A Redis of our own for a benchmark's peer (BullMQ): `redis-server` in the foreground, a child of the benchmark, on
 * a free loopback port, with no persistence (`--save '' --appendonly no`) and a temp dir of its own, stopped by its
 * pid. When `redis-server` is not on PATH it is installed as the project installs what its suites need: Debian's
 * package with apt (as root), under the lock the other apt installs take.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aptInstall } from '../../test/kit/apt.js';
import { Cli, freePort } from '../../test/kit/processes.js';
import { poll } from '../../test/kit/wait.js';
import { processCpuMs } from './child-cpu.js';

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

export class OwnRedis {
  private constructor(
    private readonly cli: Cli,
    readonly port: number,
    readonly version: string,
    private readonly dir: string,
  ) {
    // The benchmark ends with process.exit on every path, or is stopped by a signal: a Redis left running would be
    // ours and nobody's.
    process.once('exit', this.kill);
    for (const sig of SIGNALS) process.once(sig, this.onSignal);
  }

  /** Starts one, or says in one line why it cannot (no redis-server and no way to install it, or it did not start). */
  static async start(): Promise<OwnRedis | { skipped: string }> {
    const found = findRedisServer();
    if ('missing' in found) return { skipped: found.missing };
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'bench-redis-'));
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    const child = spawn('redis-server', [...args, '--dir', dir, '--daemonize', 'no', '--logfile', ''], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const cli = new Cli('redis-server', child);
    const redis = new OwnRedis(cli, port, found.version, dir);
    const ready = () => /Ready to accept connections/.test(cli.output);
    await poll(() => (ready() || !cli.alive ? true : undefined), START_TIMEOUT_MS);
    if (ready()) return redis;
    await redis.stop();
    const last = cli.output.trim().split('\n').slice(-2).join(' / ');
    return {
      skipped: `redis-server on port ${port} did not become ready within ${START_TIMEOUT_MS} ms: ${last}`,
    };
  }

  get pid(): number {
    return this.cli.pid;
  }

  /** CPU (user + system) it used so far, ms; undefined without /proc. */
  cpuMs(): number | undefined {
    return processCpuMs(this.pid);
  }

  /** SIGTERM by its pid (SIGKILL after 10 s), waits for its exit, deletes its dir. */
  async stop(): Promise<void> {
    process.removeListener('exit', this.kill);
    for (const sig of SIGNALS) process.removeListener(sig, this.onSignal);
    if (this.cli.alive) {
      this.cli.signal('SIGTERM');
      const timer = setTimeout(() => this.kill(), STOP_TIMEOUT_MS);
      await this.cli.exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private readonly kill = (): void => this.cli.signal('SIGKILL');

  /** Ctrl+C or SIGTERM while it runs: it goes too (its temp dir with it), then exit 130. */
  private readonly onSignal = (): void => {
    this.kill();
    rmSync(this.dir, { recursive: true, force: true });
    process.exit(130);
  };
}

/** `redis-server --version` → "7.0.15"; installs Debian's redis-server first when there is none (root only). */
function findRedisServer(): { version: string } | { missing: string } {
  const probe = (): string | undefined => {
    const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
    if (r.error || r.status !== 0) return undefined;
    return /v=(\S+)/.exec(r.stdout)?.[1] ?? '?';
  };
  const version = probe();
  if (version !== undefined) return { version };
  if (process.getuid?.() !== 0)
    return {
      missing: 'no redis-server on PATH (install Redis, or run as root to let apt install redis-server)',
    };
  if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0)
    return { missing: 'no redis-server on PATH, and no apt-get to install it' };
  console.log('installing redis-server with apt (the BullMQ peer needs it) ...');
  const failed = aptInstall(['redis-server']);
  const installed = probe();
  if (installed !== undefined) return { version: installed };
  return { missing: failed ?? 'apt-get installed redis-server, yet there is no redis-server on PATH' };
}
