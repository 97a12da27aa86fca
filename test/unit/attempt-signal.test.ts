import { describe, expect, it } from 'vitest';
import { AttemptSignal } from '../../src/consumer/attempt-signal.js';

describe('AttemptSignal.race', () => {
  it('should leave no rejection unhandled when the attempt was aborted before its processor started', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const attempt = new AttemptSignal();
      attempt.abort(new Error('drained'));
      let fail: (err: Error) => void = () => undefined;
      const processor = new Promise<void>((_, reject) => (fail = reject));
      await expect(attempt.race(processor)).rejects.toThrow('drained');
      fail(new Error('the processor failed after it was abandoned'));
      // Node reports an unhandled rejection once the microtasks after it ran: two turns of the event loop.
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('should reject with the abort reason as soon as a running attempt is aborted, and settle with it otherwise', async () => {
    const aborted = new AttemptSignal();
    const raced = aborted.race(new Promise<void>(() => undefined));
    aborted.abort(new Error('cancelled'));
    await expect(raced).rejects.toThrow('cancelled');
    await expect(new AttemptSignal().race(Promise.resolve(7))).resolves.toBe(7);
  });
});
