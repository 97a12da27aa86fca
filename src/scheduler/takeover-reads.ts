export type ReadOutcome = 'caught-up' | 'abandoned';

/**
 * The state reads of the takeovers in progress. A takeover waits until its partition was read up to the end
 * offset measured after fencing; if a new assignment takes the partition away first, nobody will fetch it any
 * more, so the wait ends as `abandoned` instead of hanging (and holding every later assignment behind it).
 */
export class TakeoverReads {
  /** Per partition, the offset after the last record read (kept across generations). */
  private readonly readUpTo = new Map<number, bigint>();
  private readonly waiting = new Map<number, { end: bigint; settle: (o: ReadOutcome) => void }>();
  private assignment = new Set<number>();

  /** A fetched batch of `partition` was handled up to `lastOffset` (transaction markers included). */
  batchDone(partition: number, lastOffset: bigint): void {
    const read = lastOffset + 1n;
    if (read > (this.readUpTo.get(partition) ?? 0n)) this.readUpTo.set(partition, read);
    const w = this.waiting.get(partition);
    if (w && read >= w.end) this.settle(partition, 'caught-up');
  }

  /** The latest join's assignment, as it arrives: reads of partitions it no longer holds are abandoned. */
  assigned(next: ReadonlySet<number>): void {
    this.assignment = new Set(next);
    for (const p of [...this.waiting.keys()]) if (!next.has(p)) this.settle(p, 'abandoned');
  }

  /** Resolves once `partition` was read up to `end`, or `abandoned` when it is (or gets) taken away first. */
  waitFor(partition: number, end: bigint): Promise<ReadOutcome> {
    if ((this.readUpTo.get(partition) ?? 0n) >= end) return Promise.resolve('caught-up');
    if (!this.assignment.has(partition)) return Promise.resolve('abandoned');
    this.waiting.get(partition)?.settle('abandoned');
    return new Promise((settle) => this.waiting.set(partition, { end, settle }));
  }

  private settle(partition: number, outcome: ReadOutcome): void {
    const w = this.waiting.get(partition);
    this.waiting.delete(partition);
    w?.settle(outcome);
  }
}
