import { afterEach, describe, expect, it } from 'vitest';
import { startSmoke, stopSmoke } from './helpers/bench.js';
import type { SmokeRun } from './helpers/bench.js';

/** Benchmarks are not tests, but CI runs each for a few seconds so they keep working (issue: benchmarks). */
describe('bench/api.js --smoke', () => {
  let run: SmokeRun | undefined;

  // The benchmark runs its own broker and taskapi; on SIGTERM it kills both and deletes the broker's data.
  afterEach(() => stopSmoke(run));

  it('should time creates, lists, the rebuild and gets of the real taskapi beside their baselines', async () => {
    run = startSmoke('api');
    const { code, out } = await run.done;
    expect(code, out).toBe(0);
    const latency = (label: string, n: number): RegExp =>
      new RegExp(`^\\| ${label}\\s+\\|\\s+${n} \\|(\\s+[\\d.]+ \\|){3}`, 'm');
    expect(out).toMatch(latency('raw kafkajs idempotent producer, 1 record \\(baseline\\)', 100));
    expect(out).toMatch(latency('taskapi POST /api/v1/tasks', 100));
    expect(out).toMatch(latency('bare fastify, 100 canned tasks \\(baseline\\)', 50));
    expect(out).toMatch(latency('taskapi, status=PAUSED \\(200\\), random cursor', 50));
    expect(out).toMatch(latency('taskapi, processor=proc-3 \\(200\\), random cursor', 50));
    expect(out).toMatch(/^\| taskapi: spawn → \/api\/readyz 200\s+\|\s+1 \|/m);
    // req/s > 0, then p50 / p99 / max, then no non-2xx answer and no error.
    const load = (label: string): RegExp =>
      new RegExp(`^\\| ${label}\\s+\\|\\s+[1-9]\\d* \\|(\\s+\\d+ \\|){3}\\s+0 \\|\\s+0 \\|`, 'm');
    expect(out).toMatch(load('bare fastify, 1 canned task \\(baseline\\)'));
    expect(out).toMatch(load('taskapi GET /api/v1/tasks/\\{id\\}'));
  }, 110_000);
});

describe('bench/api-tasks-shard.js --smoke', () => {
  let run: SmokeRun | undefined;

  // The benchmark kills the schedulers it started on SIGTERM.
  afterEach(() => stopSmoke(run));

  it('should measure CPU per create, heap per definition and the re-read on gaining partitions', async () => {
    run = startSmoke('api-tasks-shard');
    const { code, out } = await run.done;
    expect(code, out).toBe(0);
    expect(out).toMatch(/CPU per create [\d.]+ ms; heap \d+ → \d+ MB, -?[\d.]+ KB per definition; held 500;/);
    expect(out).toMatch(/50 more creates at 500\/s with 500 held: CPU per create [\d.]+ ms/);
    expect(out).toMatch(/second instance: held \d+ \+ \d+; its read: .* task\(s\) from taskmanager\.tasks/);
    expect(out).toMatch(/after it stopped, the first held all 550 \d+ ms later/);
  }, 110_000);
});

describe('bench/volume.js --smoke', () => {
  let run: SmokeRun | undefined;

  // The benchmark runs its own broker, scheduler, consumer and taskapi; on SIGTERM it kills them all.
  afterEach(() => stopSmoke(run));

  it('should measure creates beside their baseline, memory, retirement, restarts and fire lag', async () => {
    run = startSmoke('volume');
    const { code, out } = await run.done;
    expect(code, out).toBe(0);
    const creates = (label: string, clients: number): RegExp =>
      new RegExp(
        `^\\| ${label}\\s+\\|\\s+${clients} \\|\\s+100 \\|\\s+[1-9]\\d* \\|(\\s+[\\d.]+ \\|){3}\\s+0 \\|`,
        'm',
      );
    for (const clients of [5, 20]) {
      expect(out).toMatch(creates('bare fastify \\+ raw kafkajs producer \\(baseline\\)', clients));
      expect(out).toMatch(creates('taskapi POST /api/v1/tasks', clients));
    }
    // Held by the scheduler and in taskapi's view: the 200 created, then the 20 to retire, then the 200 again.
    // Each row: taskapi's RSS (its anonymous part) then and resting, the scheduler's RSS and heap, then the counts.
    const memoryRow = (label: string, view: number, held: number): RegExp =>
      new RegExp(
        `^\\| ${label}\\s+\\|(\\s+\\d+ \\(\\d+\\) \\|){2}(\\s+\\d+ \\|){2}\\s+${view} \\|\\s+${held} \\|`,
        'm',
      );
    expect(out).toMatch(memoryRow('N = 200 created', 200, 200));
    expect(out).toMatch(memoryRow('N \\+ 20 due within the minute', 220, 220));
    expect(out).toMatch(memoryRow('after that batch retired', 200, 200));
    expect(out).toMatch(/20 of 20 one-shots answered 404 \(retired\)/);
    expect(out).toMatch(/^\| checkpointed \(its store kept\)\s+\|\s+\d+ \|\s+\d+ \|\s+250 \|/m);
    expect(out).toMatch(/^\| cold \(data dir deleted\)\s+\|\s+\d+ \|\s+\d+ \|\s+250 \|/m);
    // Lag from firedAt (the target's), from the record timestamp and to read-committed arrival.
    expect(out).toMatch(
      /fire lag: 50 one-shots, 50 due\/s .*: fired 50, missed 0, twice 0; lag \(firedAt\) p50 -?\d+ ms, p99 -?\d+ ms, max -?\d+ ms; record timestamp p50 -?\d+ ms, p99 -?\d+ ms, max -?\d+ ms; read committed p50 \d+ ms/,
    );
    expect(out).toMatch(
      /CPU per create over the create phase: scheduler [\d.]+ ms \(.*; beyond idle -?[\d.]+ ms\)/,
    );
  }, 60_000);
});
