import type { Clock } from './clock.js';

/** A signal that aborts when any parent does (or after `timeoutMs`); `dispose` drops the links and the timer. */
export interface LinkedSignal {
  readonly signal: AbortSignal;
  dispose(): void;
}

/**
 * Like `AbortSignal.any` (+ `AbortSignal.timeout`), but with strong references: on Node 20 a composite signal
 * that only its own listeners reference can be garbage-collected and never fire, which left hung tasks unaborted.
 * The timer runs on the given clock.
 */
export function linkSignals(
  parents: readonly AbortSignal[],
  timeout?: { clock: Clock; ms: number; reason: () => Error },
): LinkedSignal {
  const controller = new AbortController();
  const unlinks: Array<() => void> = [];
  for (const p of parents) {
    if (p.aborted) {
      controller.abort(p.reason);
      break;
    }
    const onAbort = (): void => controller.abort(p.reason);
    p.addEventListener('abort', onAbort, { once: true });
    unlinks.push(() => p.removeEventListener('abort', onAbort));
  }
  if (timeout && !controller.signal.aborted) {
    const handle = timeout.clock.setTimeout(() => controller.abort(timeout.reason()), timeout.ms);
    unlinks.push(() => timeout.clock.clearTimeout(handle));
  }
  return {
    signal: controller.signal,
    dispose: () => unlinks.splice(0).forEach((u) => u()),
  };
}
