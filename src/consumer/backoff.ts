export interface BackoffOptions {
  /** @default 200 */
  baseMs?: number;
  /** @default 30000 */
  maxMs?: number;
}

/**
 * Exponential backoff with full jitter (AWS architecture blog): a uniform delay in [0, min(max, base·2^(n-1))],
 * so retries of many tasks failing together spread out instead of hitting a dependency in waves.
 */
export function retryDelayMs(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const base = options.baseMs ?? 200;
  const max = options.maxMs ?? 30_000;
  const ceiling = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}
