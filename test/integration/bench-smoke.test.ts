import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { brokers, createTopics, deleteTopics, uniqueName } from './helpers/kafka.js';
import { ROOT } from './helpers/processes.js';

/** Runs `dist/bench/<name>.js --smoke` against the test broker and a fresh topic; resolves to its exit code and output. */
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

/** Benchmarks are not tests, but CI runs each for a few seconds so they keep working (issue: benchmarks). */
describe('scheduler benchmarks, --smoke', () => {
  const topic = uniqueName('bench');

  afterEach(() => deleteTopics([topic]));

  it('bench/firing should report no early, duplicate or missed fire, beside node-cron and croner', async () => {
    await createTopics([topic]);
    const { code, out } = await smoke('firing', topic);
    expect(code, out).toBe(0);
    expect(out).toMatch(/\| taskmanager .*\|\s+0 \|\s+0 \|\s+0 \|/);
    expect(out).toContain('node-cron');
    expect(out).toContain('croner');
  });

  it('bench/herd should publish the whole herd and time it against a raw kafkajs producer', async () => {
    await createTopics([topic]);
    const { code, out } = await smoke('herd', topic);
    expect(code, out).toBe(0);
    expect(out).toMatch(/\| taskmanager \(this tree\)\s+\|\s+500 \|\s+0 \|/);
    expect(out).toContain('raw kafkajs producer (baseline)');
  });

  it('bench/footprint should report heap per schedule and arm time for us and the peers', async () => {
    const { code, out } = await smoke('footprint', topic);
    expect(code, out).toBe(0);
    expect(out).toMatch(/\| taskmanager \(this tree\)\s+\|\s+2000 \|\s+[\d.]+ KB \|/);
    expect(out).toContain('croner');
  });
});
