import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { brokers } from '../integration/helpers/kafka.js';
import { ROOT } from '../integration/helpers/processes.js';

/** Benchmarks are not tests, but CI runs each for a few seconds so they keep working (issue: benchmarks). */
describe('bench/failover.js --smoke', () => {
  let child: ChildProcess | undefined;

  // The benchmark makes and deletes its own topics and groups; on SIGTERM it kills the CLIs it started.
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child?.on('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('should measure a consumer leaving and a scheduler killed, losing and doubling no task', async () => {
    const bench = spawn(process.execPath, [resolve(ROOT, 'dist/bench/failover.js'), '--smoke'], {
      cwd: ROOT,
      env: { ...process.env, KAFKA_BROKERS: brokers(), KAFKAJS_NO_PARTITIONER_WARNING: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = bench;
    let out = '';
    bench.stdout.on('data', (d: Buffer) => (out += d.toString()));
    bench.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => bench.on('exit', (c) => r(c)));
    expect(code, out).toBe(0);
    // runs | min | median | max | target | met | tasks | lost | twice (allowed)
    const row = (label: string): RegExp =>
      new RegExp(
        `^\\| ${label}\\s+\\|\\s+1 \\|(\\s+[\\d.]+ \\|){3}\\s+≤ \\d+ \\|\\s+(yes|no \\(\\d+/1\\)) \\|\\s+[1-9]\\d* \\|\\s+0 \\|\\s+0 \\(0\\) \\|$`,
        'm',
      );
    expect(out).toMatch(row('b\\. consumer SIGTERM'));
    expect(out).toMatch(row('c\\. scheduler kill -9'));
  }, 120_000);
});
