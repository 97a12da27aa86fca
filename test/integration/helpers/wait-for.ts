export interface WaitOptions {
  timeoutMs: number;
  /** @default 50 */
  intervalMs?: number;
  /** Said in the error when the deadline passes. */
  what?: string;
}

/** Polls until the predicate returns a truthy value (returned) or the deadline passes. No fixed sleeps. */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  options: WaitOptions,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + options.timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await predicate();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `; last error: ${last.message}` : '';
      throw new Error(
        `timed out after ${options.timeoutMs} ms waiting for ${options.what ?? 'condition'}${why}`,
      );
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 50));
  }
}
