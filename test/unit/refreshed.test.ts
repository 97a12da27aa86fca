import { describe, expect, it } from 'vitest';
import { Refreshed } from '../../src/api/refreshed.js';
import { FakeClock } from './helpers/fake-clock.js';
import { settle } from './helpers/settle.js';

describe('Refreshed', () => {
  it('should fail a take that never ends after its timeout, and start another for the next caller', async () => {
    const clock = new FakeClock(0);
    let takes = 0;
    const r = new Refreshed<number>({
      clock,
      everyMs: 5000,
      timeoutMs: 10_000,
      // The first take hangs for good (a Kafka call that never returns); the second answers.
      take: () => (++takes === 1 ? new Promise<number>(() => undefined) : Promise.resolve(42)),
    });
    const first = r.latest();
    const failed = expect(first).rejects.toThrow('no answer within 10 s');
    await settle();
    clock.advance(10_000);
    await failed;
    // The failure is kept like a value (not asked again by every caller) until it is everyMs old.
    await expect(r.latest()).rejects.toThrow('no answer within 10 s');
    clock.advance(5000);
    await expect(r.fresh()).resolves.toBe(42);
    expect(takes).toBe(2);
  });
});
