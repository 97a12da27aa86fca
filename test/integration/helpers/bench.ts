import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { brokers } from './kafka.js';
import { ROOT } from './processes.js';

/** A running `dist/bench/<name>.js --smoke`: its process, and its exit code and output once it ends. */
export interface SmokeRun {
  child: ChildProcess;
  done: Promise<{ code: number | null; out: string }>;
}

/** Starts `dist/bench/<name>.js --smoke` with the test broker in its environment (and `extraEnv`). */
export function startSmoke(name: string, extraEnv: Record<string, string> = {}): SmokeRun {
  const child = spawn(process.execPath, [resolve(ROOT, `dist/bench/${name}.js`), '--smoke'], {
    cwd: ROOT,
    env: { ...process.env, KAFKA_BROKERS: brokers(), KAFKAJS_NO_PARTITIONER_WARNING: '1', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<{ code: number | null; out: string }>((r) =>
    child.on('exit', (code) => r({ code, out })),
  );
  return { child, done };
}

/** Runs `dist/bench/<name>.js --smoke` against the test broker and `topic`; resolves to its exit code and output. */
export async function smoke(name: string, topic: string): Promise<{ code: number | null; out: string }> {
  return startSmoke(name, { BENCH_TOPIC: topic }).done;
}
