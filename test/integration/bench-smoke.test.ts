import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { brokers, createTopics, deleteTopics, uniqueName } from './helpers/kafka.js';
import { ROOT } from './helpers/processes.js';

/** Benchmarks are not tests, but CI runs each for a few seconds so they keep working (issue: benchmarks). */
describe('bench/firing.js --smoke', () => {
  const topic = uniqueName('bench');

  afterEach(() => deleteTopics([topic]));

  it('should run against the broker and report no early, duplicate or missed fire', async () => {
    await createTopics([topic]);
    const child = spawn(process.execPath, [resolve(ROOT, 'dist/bench/firing.js'), '--smoke'], {
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
    expect(code, out).toBe(0);
    expect(out).toMatch(/\| taskmanager .*\|\s+0 \|\s+0 \|\s+0 \|/);
    expect(out).toContain('node-cron');
    expect(out).toContain('croner');
  });
});
