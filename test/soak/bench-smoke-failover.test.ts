import { afterEach, describe, expect, it } from 'vitest';
import { startSmoke, stopSmoke } from '../integration/helpers/bench.js';
import type { SmokeRun } from '../integration/helpers/bench.js';

/** Benchmarks are not tests, but CI runs each for a few seconds so they keep working (issue: benchmarks). */
describe('bench/failover.js --smoke', () => {
  let run: SmokeRun | undefined;

  // The benchmark makes and deletes its own topics and groups; on SIGTERM it kills the CLIs it started.
  afterEach(() => stopSmoke(run));

  it('should measure a consumer leaving and a scheduler killed, losing and doubling no task', async () => {
    run = startSmoke('failover');
    const { code, out } = await run.done;
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
