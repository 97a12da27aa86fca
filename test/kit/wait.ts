/**
 * Waiting for conditions, for tests and benchmarks alike: poll a predicate until it holds or a deadline passes.
 * No fixed sleeps in tests: wait for what the test needs (a record, a log line, a metric), with a deadline.
 */

export interface WaitOptions {
  timeoutMs: number;
  /** @default 50 */
  intervalMs?: number;
  /** Said in the error when the deadline passes (a function: read then, so it can show the latest state). */
  what?: string | (() => string);
}

/** Resolves after `ms` (0 when negative). For a benchmark's own timing, never to let something settle. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/**
 * Polls until the predicate returns a truthy value (resolved with it) or the deadline passes (resolved with
 * undefined, with the predicate's last error if it threw).
 */
async function until<T>(
  predicate: () => T | Promise<T>,
  timeoutMs: number,
  intervalMs: number,
): Promise<{ value: NonNullable<T> } | { value: undefined; last: unknown }> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await predicate();
      if (v) return { value: v as NonNullable<T> };
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) return { value: undefined, last };
    await sleep(intervalMs);
  }
}

/** Polls until the predicate returns a truthy value (returned) or the deadline passes (thrown, saying what). */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  options: WaitOptions,
): Promise<NonNullable<T>> {
  const r = await until(predicate, options.timeoutMs, options.intervalMs ?? 50);
  if (r.value !== undefined) return r.value;
  const last = 'last' in r ? r.last : undefined;
  const why = last instanceof Error ? `; last error: ${last.message}` : '';
  const what = typeof options.what === 'function' ? options.what() : (options.what ?? 'condition');
  throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}${why}`);
}

/** Polls until `f` returns a value (returned), or resolves undefined at the deadline (a benchmark then reports it). */
export async function poll<T>(
  f: () => T | undefined,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T | undefined> {
  return (await until(f, timeoutMs, intervalMs)).value;
}

/** Rejects with `what()` when the promise has not settled within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what()} (after ${ms} ms)`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
