import type { Clock, TimerHandle } from '../shared/clock.js';

/** What a cancel request, a drain or a timeout aborts: an attempt, or the wait before the next one. */
export interface Abortable {
  abort(reason: unknown): void;
}

/**
 * One attempt's abort: by its drain (the partition's signal), a cancel request, or its timeout. The AbortSignal a
 * processor sees is made only when the processor reads `ctx.signal` (most never do): an attempt that nobody aborts
 * costs this object and no AbortController, no listener and no closure.
 */
export class AttemptSignal implements Abortable {
  private controller: AbortController | undefined;
  private abortReason: unknown;
  private isAborted = false;
  /** The rejecter of {@link race}, while it waits. */
  private onAbort: ((reason: unknown) => void) | undefined;
  private timer: TimerHandle | undefined;
  private clock: Clock | undefined;

  get aborted(): boolean {
    return this.isAborted;
  }

  get reason(): unknown {
    return this.abortReason;
  }

  /** The signal, made at the first read: aborted at once when the attempt is aborted already. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.isAborted) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.isAborted) return;
    this.isAborted = true;
    this.abortReason = reason;
    this.clearTimer();
    this.controller?.abort(reason);
    const reject = this.onAbort;
    this.onAbort = undefined;
    reject?.(reason);
  }

  /** Aborts with `reason()` after `ms` on `clock`, unless aborted or disposed before. */
  timeout(clock: Clock, ms: number, reason: () => Error): void {
    if (this.isAborted) return;
    this.clock = clock;
    this.timer = clock.setTimeout(() => {
      this.timer = undefined;
      this.abort(reason());
    }, ms);
  }

  /**
   * Settles with the promise, or rejects with the abort's reason as soon as the attempt is aborted: a processor that
   * ignores its signal is abandoned, so it cannot hold a drain or a partition forever.
   */
  race<T>(promise: Promise<T>): Promise<T> {
    if (this.isAborted) {
      // Abandoned as it starts: its own rejection, whenever it comes, is nobody's to handle.
      promise.catch(() => undefined);
      return Promise.reject(this.abortReason as Error);
    }
    return new Promise<T>((resolve, reject) => {
      this.onAbort = reject as (reason: unknown) => void;
      promise.then(
        (v) => {
          this.onAbort = undefined;
          resolve(v);
        },
        (err: unknown) => {
          this.onAbort = undefined;
          reject(err as Error);
        },
      );
    });
  }

  /** The attempt settled: its timer goes. */
  dispose(): void {
    this.clearTimer();
    this.onAbort = undefined;
  }

  private clearTimer(): void {
    if (this.timer && this.clock) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * The attempts running under each drain signal (a partition's): one listener per signal, whatever the number of
 * attempts, instead of one added and removed per attempt (adding a listener costs as many steps as there are).
 */
export class DrainLinks {
  private readonly bySignal = new WeakMap<AbortSignal, Set<Abortable>>();

  /** `target` is aborted with the drain's reason when it aborts (at once when it has). */
  link(drain: AbortSignal, target: Abortable): void {
    if (drain.aborted) {
      target.abort(drain.reason);
      return;
    }
    let set = this.bySignal.get(drain);
    if (!set) {
      const all = (set = new Set());
      this.bySignal.set(drain, all);
      drain.addEventListener(
        'abort',
        () => {
          for (const t of [...all]) t.abort(drain.reason);
          all.clear();
        },
        { once: true },
      );
    }
    set.add(target);
  }

  unlink(drain: AbortSignal, target: Abortable): void {
    this.bySignal.get(drain)?.delete(target);
  }
}
