import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { brokers } from './kafka.js';
import { ROOT } from './processes.js';

/** Runs `dist/bench/<name>.js --smoke` against the test broker and `topic`; resolves to its exit code and output. */
export async function smoke(name: string, topic: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [resolve(ROOT, `dist/bench/${name}.js`), '--smoke'], {
    cwd: ROOT,
    env: {
      ...process.env,
      KAFKA_BROKERS: brokers(),
      BENCH_TOPIC: topic,
      KAFKAJS_NO_PARTITIONER_WARNING: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { code, out };
}
