/**
 * scripts/kafka-local itself, on a second broker with its own ports and data dir, so the shared broker of the
 * global setup (127.0.0.1:9092) is neither used nor disturbed.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { isRunning } from '../kit/processes.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SCRIPT = resolve(ROOT, 'scripts/kafka-local');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `scripts/kafka-local <command>` with extra environment; resolves with its exit code whatever it is. */
function kafkaLocal(command: string, env: Record<string, string>): Promise<Run> {
  return new Promise((done) => {
    execFile(
      'bash',
      [SCRIPT, command],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 115_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        done({ code, stdout: stdout.toString(), stderr: stderr.toString() });
      },
    );
  });
}

/** A TCP port nobody listens on right now. */
async function freePort(): Promise<number> {
  const server = await listen(0);
  const { port } = server.address() as { port: number };
  await new Promise<void>((closed) => server.close(() => closed()));
  return port;
}

function listen(port: number): Promise<Server> {
  return new Promise((listening, failed) => {
    const server = createServer();
    server.once('error', failed);
    server.listen(port, '127.0.0.1', () => listening(server));
  });
}

function pidIn(output: string): number {
  const match = /\(pid (\d+)\)/.exec(output);
  if (!match?.[1]) throw new Error(`no "(pid N)" in: ${output}`);
  return Number(match[1]);
}

describe('when a second local broker is started on its own ports', () => {
  let env: Record<string, string>;
  let dataDir: string;
  let port: number;
  let firstStart: Run;
  let pid: number | undefined;

  beforeAll(async () => {
    port = await freePort();
    const controllerPort = await freePort();
    dataDir = mkdtempSync(join(tmpdir(), 'kafka-local-test-'));
    env = {
      KAFKA_LOCAL_PORT: String(port),
      KAFKA_LOCAL_CONTROLLER_PORT: String(controllerPort),
      KAFKA_LOCAL_DATA: dataDir,
    };
    firstStart = await kafkaLocal('start', env);
    if (firstStart.code === 0) pid = pidIn(firstStart.stdout);
  });

  afterAll(async () => {
    // Runs even when a test failed: the broker must not outlive the suite.
    await kafkaLocal('stop', env);
    if (pid !== undefined && isRunning(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('should say it is ready, on which port, how fast and as which pid', () => {
    expect(firstStart.code, firstStart.stderr).toBe(0);
    expect(firstStart.stdout).toMatch(
      new RegExp(`^Kafka \\S+ ready on 127\\.0\\.0\\.1:${port} in \\d+\\.\\d s \\(pid \\d+\\)$`, 'm'),
    );
    expect(isRunning(pidIn(firstStart.stdout))).toBe(true);
  });

  it('should serve clients as soon as start returns', async () => {
    const admin = new Kafka({ brokers: [`127.0.0.1:${port}`], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      // The readiness probe created and wrote this topic before start returned.
      expect(await admin.listTopics()).toContain('kafka-local-probe');
    } finally {
      await admin.disconnect();
    }
  });

  it('should say already running with the same pid when started again', async () => {
    const second = await kafkaLocal('start', env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('already running');
    expect(pidIn(second.stdout)).toBe(pid);
  });

  it('should report running with exit 0 while it is up', async () => {
    const status = await kafkaLocal('status', env);
    expect(status.code).toBe(0);
    expect(status.stdout.trim()).toBe(`running (pid ${pid}) on 127.0.0.1:${port}`);
  });

  it('should leave no process behind when stopped', async () => {
    const stop = await kafkaLocal('stop', env);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toMatch(new RegExp(`^(stopped|killed) \\(pid ${pid}\\)`));
    expect(() => process.kill(pid as number, 0)).toThrow();
    expect(existsSync(join(dataDir, 'kafka.pid'))).toBe(false);
  });

  it('should report not running with a non-zero exit after stop', async () => {
    const status = await kafkaLocal('status', env);
    expect(status.code).not.toBe(0);
    expect(status.stdout).toContain('not running');
  });

  it('should treat a second stop as done', async () => {
    const stop = await kafkaLocal('stop', env);
    expect(stop.code).toBe(0);
    expect(stop.stdout.trim()).toBe('not running');
  });
});

describe('when the port is already taken by another process', () => {
  let server: Server;
  let port: number;
  let env: Record<string, string>;
  let dataDir: string;

  beforeAll(async () => {
    server = await listen(0);
    port = (server.address() as { port: number }).port;
    dataDir = mkdtempSync(join(tmpdir(), 'kafka-local-test-'));
    env = {
      KAFKA_LOCAL_PORT: String(port),
      KAFKA_LOCAL_CONTROLLER_PORT: String(await freePort()),
      KAFKA_LOCAL_DATA: dataDir,
    };
  });

  afterAll(async () => {
    await kafkaLocal('stop', env); // in case a broken script started one after all
    await new Promise<void>((closed) => server.close(() => closed()));
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('should refuse with one clear line and a non-zero exit, starting nothing', async () => {
    const start = await kafkaLocal('start', env);
    expect(start.code).not.toBe(0);
    const lines = start.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`port 127.0.0.1:${port} is already in use`);
    expect(lines[0]).toContain('not touching it');
    expect(existsSync(join(dataDir, 'kafka.pid'))).toBe(false);
    expect(server.listening).toBe(true);
  });

  it('should not call the other process a running broker', async () => {
    const status = await kafkaLocal('status', env);
    expect(status.code).not.toBe(0);
    expect(status.stdout).toContain('not running');
  });
});
