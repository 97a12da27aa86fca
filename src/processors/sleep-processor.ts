import { NonRetriableError } from '../shared/errors.js';
import type { Processor } from './types.js';

/** Sleeps `payload.ms` milliseconds (default 1000); rejects as soon as its abort signal fires. */
export const sleepProcessor: Processor = {
  name: 'SleepProcessor',
  process(task, ctx) {
    const p = task.payload;
    const raw = p && typeof p === 'object' && 'ms' in p ? (p as { ms: unknown }).ms : 1000;
    if (typeof raw !== 'number' || !Number.isFinite(raw) || raw < 0) {
      return Promise.reject(
        new NonRetriableError(`payload.ms must be a non-negative number, got ${JSON.stringify(raw)}`),
      );
    }
    return new Promise((resolve, reject) => {
      if (ctx.signal.aborted) {
        reject(ctx.signal.reason);
        return;
      }
      const timer = setTimeout(() => {
        ctx.signal.removeEventListener('abort', onAbort);
        resolve();
      }, raw);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(ctx.signal.reason);
      };
      ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
  },
};
