import { describe, expect, it } from 'vitest';
import { backoffDelayMs, retryUntilDone } from '../../src/shared/backoff.js';
import { FakeClock } from './helpers/fake-clock.js';

/** The waits after failed attempts 1..n. */
function waits(n: number, options: Parameters<typeof backoffDelayMs>[1]): number[] {
  return Array.from({ length: n }, (_, i) => backoffDelayMs(i + 1, options));
}

describe('retry backoff', () => {
  describe('when attempts grow', () => {
    it('should double the ceiling with full jitter, capped', () => {
      expect(backoffDelayMs(1, { baseMs: 100, jitter: true }, () => 0.999)).toBe(99);
      expect(backoffDelayMs(3, { baseMs: 100, jitter: true }, () => 0.999)).toBe(399);
      expect(backoffDelayMs(30, { baseMs: 100, maxMs: 1000, jitter: true }, () => 0.999)).toBe(999);
      expect(backoffDelayMs(3, { baseMs: 100, jitter: true }, () => 0)).toBe(0);
    });

    it('should wait exactly base, twice base, … up to the cap without jitter', () => {
      expect(waits(5, { baseMs: 500, maxMs: 2000 })).toEqual([500, 1000, 2000, 2000, 2000]);
      expect(waits(7, { baseMs: 100, maxMs: 2000 })).toEqual([100, 200, 400, 800, 1600, 2000, 2000]);
      expect(waits(6, { baseMs: 500, maxMs: 5000 })).toEqual([500, 1000, 2000, 4000, 5000, 5000]);
    });

    it('should keep the same wait with factor 1', () => {
      expect(waits(4, { baseMs: 250, factor: 1 })).toEqual([250, 250, 250, 250]);
    });

    it('should start at 200 ms and stop at 30 s by default (those of task retries)', () => {
      expect(backoffDelayMs(1)).toBe(200);
      expect(backoffDelayMs(20)).toBe(30_000);
    });
  });

  describe('when the attempt number is extreme', () => {
    it('should stay a finite number at the cap', () => {
      expect(backoffDelayMs(1e6, { baseMs: 500, maxMs: 5000 })).toBe(5000);
      expect(backoffDelayMs(Number.MAX_SAFE_INTEGER, { baseMs: 1, maxMs: 7, factor: 10 })).toBe(7);
      expect(backoffDelayMs(0, { baseMs: 500, maxMs: 5000 })).toBe(500);
      expect(backoffDelayMs(1e6, { baseMs: 0, maxMs: 5000 })).toBe(0);
    });
  });
});

describe('retrying until done', () => {
  describe('when the first attempts fail', () => {
    it('should wait the backoff on the clock between attempts and resolve to the result', async () => {
      const clock = new FakeClock(0);
      const told: Array<[number, number]> = [];
      let calls = 0;
      const done = retryUntilDone(
        async () => {
          if (++calls < 3) throw new Error(`down ${calls}`);
          return 'up';
        },
        { backoff: { baseMs: 500, maxMs: 5000 }, clock, onFailure: (_e, n, ms) => told.push([n, ms]) },
      );
      await Promise.resolve();
      await Promise.resolve();
      expect(calls).toBe(1);
      clock.advance(499);
      await new Promise((r) => setImmediate(r));
      expect(calls).toBe(1);
      clock.advance(1);
      await new Promise((r) => setImmediate(r));
      expect(calls).toBe(2);
      clock.advance(1000);
      expect(await done).toBe('up');
      expect(told).toEqual([
        [1, 500],
        [2, 1000],
      ]);
    });
  });

  describe('when onFailure throws', () => {
    it('should give up with that error without waiting', async () => {
      const clock = new FakeClock(0);
      let calls = 0;
      const done = retryUntilDone(
        async () => {
          calls++;
          throw new Error('topic t does not exist');
        },
        {
          backoff: {},
          clock,
          onFailure: (err) => {
            throw new Error(`gave up: ${(err as Error).message}`);
          },
        },
      );
      await expect(done).rejects.toThrow('gave up: topic t does not exist');
      expect(calls).toBe(1);
      expect(clock.pendingTimers).toBe(0);
    });
  });
});
