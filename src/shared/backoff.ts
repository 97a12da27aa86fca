import type { Clock } from './clock.js';
import { sleep } from './clock.js';

/** How the wait between two attempts grows (as graphile-worker's `calculateDelay` takes its retry options). */
export interface BackoffOptions {
  /** The wait after the first failure (with jitter: its ceiling). @default 200 */
  baseMs?: number;
  /** No wait is longer. @default 30000 */
  maxMs?: number;
  /** Each wait is this many times the one before, up to `maxMs`. @default 2 */
  factor?: number;
  /**
   * Full jitter (AWS architecture blog): a uniform wait in [0, the computed wait), so retries of many things that
   * failed together spread out instead of hitting a dependency in waves. @default false
   */
  jitter?: boolean;
}

/** Keeps `factor ** n` finite (and the wait at `maxMs`) for any attempt number. */
const MAX_EXPONENT = 64;

/**
 * The wait before retrying after failed attempt number `attempt` (1 = the first failure): `baseMs · factor^(attempt-1)`,
 * capped at `maxMs`, and with `jitter` a uniform share of it drawn from `random`. Pure: same inputs, same wait.
 */
export function backoffDelayMs(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const base = options.baseMs ?? 200;
  const max = options.maxMs ?? 30_000;
  const factor = options.factor ?? 2;
  const exponent = Math.min(Math.max(0, Math.floor(attempt) - 1), MAX_EXPONENT);
  const ceiling = Math.max(0, Math.min(max, base * factor ** exponent));
  return options.jitter ? Math.floor(random() * ceiling) : ceiling;
}

export interface RetryOptions {
  backoff: BackoffOptions;
  clock: Clock;
  /**
   * Told of each failure before the wait, with the attempt that failed and the wait: logs it, or throws (that error
   * or another) to give up.
   */
  onFailure(err: unknown, attempt: number, delayMs: number): void;
}

/** Calls `attempt` until it resolves, waiting {@link backoffDelayMs} after each failure on `clock`. */
export async function retryUntilDone<T>(attempt: () => Promise<T>, o: RetryOptions): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      const delayMs = backoffDelayMs(n, o.backoff);
      o.onFailure(err, n, delayMs);
      await sleep(o.clock, delayMs);
    }
  }
}
