/**
 * Tracks which records of a batch finished, in any order, and says how far the committed offset may move: to
 * the end of the contiguous run of finished records from the start. A crash then re-delivers only unfinished ones.
 */
export class ContiguousOffsets {
  private readonly done: boolean[];
  private readonly indexOf = new Map<string, number>();
  private cursor = 0;

  /** @param offsets the batch's record offsets, ascending */
  constructor(private readonly offsets: readonly string[]) {
    this.done = offsets.map(() => false);
    offsets.forEach((o, i) => this.indexOf.set(o, i));
  }

  /** Marks one record finished; returns the offset that may now be resolved, if the run grew. */
  finish(offset: string): string | undefined {
    const i = this.indexOf.get(offset);
    if (i === undefined) throw new Error(`offset ${offset} is not in this batch`);
    this.done[i] = true;
    const before = this.cursor;
    while (this.cursor < this.done.length && this.done[this.cursor]) this.cursor++;
    return this.cursor > before ? this.offsets[this.cursor - 1] : undefined;
  }

  get allDone(): boolean {
    return this.cursor === this.done.length;
  }
}
