import type { ScheduleEntry } from '../shared/config/schema.js';
import { partitionForKey } from '../shared/kafka/index.js';
import { stateKey } from '../shared/codecs/scheduler-state.js';

/** Everything that makes an entry behave differently (its position in the file does not). */
function fingerprintOf(e: ScheduleEntry): string {
  const { index: _index, ...rest } = e;
  return JSON.stringify(rest);
}

/** What a new version of the schedule changed, by Id. */
export interface EntryDiff {
  added: string[];
  changed: string[];
  removed: string[];
}

/**
 * The entries of one scheduler group and the state partition each maps to: the partitioner over `<group>/<Id>`,
 * as the producer places the entry's state records.
 */
export class EntryCatalog {
  private readonly entries = new Map<string, ScheduleEntry>();
  private partitionCount = 0;
  private readonly partitionById = new Map<string, number>();

  constructor(
    private readonly group: string,
    entries: readonly ScheduleEntry[],
  ) {
    for (const e of entries) this.entries.set(e.id, e);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Partitions of the state topic; 0 until `partitionsAre` was told. */
  get partitions(): number {
    return this.partitionCount;
  }

  /** The state topic's partition count, read at start. */
  partitionsAre(count: number): void {
    this.partitionCount = count;
  }

  get(id: string): ScheduleEntry | undefined {
    return this.entries.get(id);
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  all(): ScheduleEntry[] {
    return [...this.entries.values()];
  }

  /** The entries, without a copy (not to be changed while iterated). */
  values(): IterableIterator<ScheduleEntry> {
    return this.entries.values();
  }

  /**
   * The state partition owning an entry; memoized for the schedule file's entries, as it is asked for on every fire.
   * Not for tasks created over HTTP: mostly one-shots, a million of them, say, each firing once.
   */
  partitionOf(id: string): number {
    let p = this.partitionById.get(id);
    if (p === undefined) {
      p = partitionForKey(stateKey(this.group, id), this.partitionCount);
      // Known only once start() read the topic's partition count.
      if (this.partitionCount > 0 && this.entries.get(id)?.source !== 'api') this.partitionById.set(id, p);
    }
    return p;
  }

  entriesOf(partition: number): ScheduleEntry[] {
    return this.all().filter((e) => this.partitionOf(e.id) === partition);
  }

  /** The entries whose state partition is among `partitions`. */
  entriesIn(partitions: ReadonlySet<number>): ScheduleEntry[] {
    return this.all().filter((e) => partitions.has(this.partitionOf(e.id)));
  }

  /**
   * Adds or replaces one entry in O(1): says whether it was added, changed, or is the same as the one held (even at
   * another index).
   */
  put(e: ScheduleEntry): 'added' | 'changed' | 'same' {
    const prev = this.entries.get(e.id);
    if (prev && fingerprintOf(prev) === fingerprintOf(e)) return 'same';
    this.entries.set(e.id, e);
    return prev ? 'changed' : 'added';
  }

  /** Removes one entry in O(1); false when it was not there. */
  delete(id: string): boolean {
    this.partitionById.delete(id);
    return this.entries.delete(id);
  }

  /**
   * Takes a new version of the schedule (hot reload): removed entries leave, added and changed ones replace what
   * was there. Says which did what; an entry whose definition is the same (even at another index) is unchanged.
   */
  replace(next: readonly ScheduleEntry[]): EntryDiff {
    const nextById = new Map(next.map((e) => [e.id, e]));
    const removed = [...this.entries.keys()].filter((id) => !nextById.has(id));
    const added: string[] = [];
    const changed: string[] = [];
    for (const e of next) {
      const prev = this.entries.get(e.id);
      if (!prev) added.push(e.id);
      else if (fingerprintOf(prev) !== fingerprintOf(e)) changed.push(e.id);
    }
    for (const id of removed) this.delete(id);
    for (const id of [...added, ...changed]) this.entries.set(id, nextById.get(id) as ScheduleEntry);
    return { added, changed, removed };
  }
}
