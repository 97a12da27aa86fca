/** One record taken from a partition: where the group resumes once it and all before it finished. */
interface Taken {
  offset: string;
  /** The position after it: its offset + 1, or past the control records that ended its fetch. */
  next: bigint;
  done: boolean;
}

/**
 * The committable position of one partition whose records finish in any order, across fetched batches: the offset
 * after the contiguous run of finished records from the first one taken (past the transaction markers that followed
 * the last of them). A crash then re-delivers only records that had not finished, and those after them.
 */
export class Watermark {
  private taken: Taken[] = [];
  private head = 0;
  private readonly byOffset = new Map<string, Taken>();
  private pos: bigint | undefined;
  private last = -1n;

  /** The position to commit (the next offset to read), once any record was taken or a fetch ended. */
  get position(): string | undefined {
    return this.pos?.toString();
  }

  /** Records taken and not finished. */
  get pending(): number {
    return this.byOffset.size;
  }

  /** Whether `offset` was taken already (a fetch that read it again). */
  has(offset: string): boolean {
    return BigInt(offset) <= this.last;
  }

  /** Takes the next record, in offset order. */
  take(offset: string): void {
    const o = BigInt(offset);
    if (o <= this.last) throw new Error(`offset ${offset} taken out of order (after ${this.last})`);
    this.last = o;
    this.pos ??= o;
    const t: Taken = { offset, next: o + 1n, done: false };
    this.taken.push(t);
    this.byOffset.set(offset, t);
  }

  /**
   * A fetch ended at `lastOffset` (control records included): once every record taken is done, the position moves
   * past it. Returns the new position when it moved.
   */
  end(lastOffset: string): string | undefined {
    const next = BigInt(lastOffset) + 1n;
    if (next - 1n > this.last) this.last = next - 1n;
    const tail = this.taken[this.taken.length - 1];
    if (this.head < this.taken.length && tail) {
      if (tail.next < next) tail.next = next;
      return undefined;
    }
    if (this.pos !== undefined && this.pos >= next) return undefined;
    this.pos = next;
    return this.position;
  }

  /** Marks a taken record finished; returns the new position when it moved. */
  finish(offset: string): string | undefined {
    const t = this.byOffset.get(offset);
    if (!t) throw new Error(`offset ${offset} was not taken`);
    this.byOffset.delete(offset);
    t.done = true;
    const before = this.head;
    while (this.head < this.taken.length && this.taken[this.head]?.done) this.head++;
    if (this.head === before) return undefined;
    this.pos = (this.taken[this.head - 1] as Taken).next;
    if (this.head === this.taken.length) {
      this.taken = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.taken.length) {
      this.taken = this.taken.slice(this.head);
      this.head = 0;
    }
    return this.position;
  }
}
