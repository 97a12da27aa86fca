/** Counts free slots; `acquire` waits for one, in arrival order. */
export class Semaphore {
  /** Waiters from `head` on; a queue of thousands (every lane of every fetched batch) is handed out in O(1). */
  private waiters: Array<(() => void) | undefined> = [];
  private head = 0;

  constructor(private free: number) {}

  get available(): number {
    return this.free;
  }

  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters[this.head];
    if (!next) {
      this.free++;
      return;
    }
    this.waiters[this.head++] = undefined;
    if (this.head === this.waiters.length) {
      this.waiters = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.waiters.length) {
      this.waiters = this.waiters.slice(this.head);
      this.head = 0;
    }
    next();
  }
}

/**
 * One holder's claim on a slot of a {@link Semaphore}, which it may give back and take again (a task gives its
 * slot back while it waits for Kafka or for a retry, and takes one again for its next attempt). Both are
 * idempotent, so a `finally` can always release.
 */
export class SlotLease {
  private held = false;

  constructor(private readonly slots: Semaphore) {}

  get isHeld(): boolean {
    return this.held;
  }

  async acquire(): Promise<void> {
    if (this.held) return;
    await this.slots.acquire();
    this.held = true;
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    this.slots.release();
  }
}
