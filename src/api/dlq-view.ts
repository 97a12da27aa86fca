import { dlqEntryOf, REPLAYED_HEADER } from '../shared/codecs/dlq-record.js';
import type { DlqEntry } from '../shared/codecs/dlq-record.js';
import type { Clock } from '../shared/clock.js';
import type { InRecord } from '../shared/kafka/index.js';

/** A dead-lettered task as the view keeps it: its `dlq-*` headers, never its value (the task and its payload). */
export type DlqItem = Omit<DlqEntry, 'record'>;

/** Which entries a page shows: those still waiting, those replayed, or both. */
export type DlqState = 'waiting' | 'replayed';

export interface DlqPageQuery {
  limit: number;
  /** `<partition>@<offset>` of the last entry of the previous page: this page starts after it. */
  after?: string;
  state?: DlqState;
}

export interface DlqPage {
  items: DlqItem[];
  waiting: number;
  replayed: number;
  /** Entries matching `state`, in all pages. */
  total: number;
  /** Where the next page starts (the last item's position); absent on the last page. */
  next?: string;
}

/** `<partition>@<offset>` → its parts; undefined when it is not one. */
export function parsePosition(text: string): { partition: number; offset: bigint } | undefined {
  const m = /^(\d{1,9})@(\d{1,19})$/.exec(text);
  return m ? { partition: Number(m[1]), offset: BigInt(m[2]!) } : undefined;
}

/**
 * One DLQ folded record by record, as its follower reads it: entries per partition in offset order, and the replay
 * markers applied as they come. Pages are cut from memory (a cursor is a position, so entries added meanwhile never
 * make a page repeat or skip one); counts are kept as records arrive, so no answer walks the whole DLQ.
 */
export class DlqView {
  private readonly partitions = new Map<number, DlqItem[]>();
  /** Partition numbers, ascending. */
  private order: number[] = [];
  private readonly byPosition = new Map<string, DlqItem>();
  /** Markers read before the record they name (never from our replays: those write the marker after it). */
  private readonly early = new Map<string, string>();
  private replayedCount = 0;
  private waiters: Array<{ positions: readonly string[]; done: () => void }> = [];

  add(r: InRecord): void {
    const position = `${r.partition}@${r.offset}`;
    const ref = r.headers[REPLAYED_HEADER];
    if (ref !== undefined) return this.mark(ref, position);
    if (this.byPosition.has(position)) return; // read twice (a follower's restart): already folded
    const { record: _value, ...item } = dlqEntryOf(r);
    const replayedBy = this.early.get(position);
    if (replayedBy !== undefined) {
      this.early.delete(position);
      item.replayedBy = replayedBy;
      this.replayedCount++;
    }
    let list = this.partitions.get(r.partition);
    if (!list) {
      this.partitions.set(r.partition, (list = []));
      this.order = [...this.partitions.keys()].sort((a, b) => a - b);
    }
    list.push(item);
    this.byPosition.set(position, item);
  }

  get size(): number {
    return this.byPosition.size;
  }

  page(q: DlqPageQuery): DlqPage {
    const waiting = this.size - this.replayedCount;
    const total = q.state === 'waiting' ? waiting : q.state === 'replayed' ? this.replayedCount : this.size;
    const from = q.after === undefined ? undefined : parsePosition(q.after);
    const items: DlqItem[] = [];
    let more = false;
    for (const p of this.order) {
      if (from && p < from.partition) continue;
      const list = this.partitions.get(p)!;
      const start = from && p === from.partition ? firstAfter(list, from.offset) : 0;
      for (let i = start; i < list.length && !more; i++) {
        const e = list[i]!;
        if (q.state && (e.replayedBy === undefined) !== (q.state === 'waiting')) continue;
        if (items.length === q.limit) more = true;
        else items.push(e);
      }
      if (more) break;
    }
    const last = items[items.length - 1];
    return {
      items,
      waiting,
      replayed: this.replayedCount,
      total,
      ...(more && last ? { next: `${last.partition}@${last.offset}` } : {}),
    };
  }

  /**
   * Resolves true once every one of `positions` shows as replayed (the markers of a replay just made), false when
   * `timeoutMs` passes first.
   */
  replayed(positions: readonly string[], clock: Clock, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const waiter = {
        positions,
        done: () => {
          clock.clearTimeout(timer);
          resolve(true);
        },
      };
      const timer = clock.setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      this.waiters.push(waiter);
      this.settle();
    });
  }

  private mark(ref: string, marker: string): void {
    const e = this.byPosition.get(ref);
    if (!e) {
      this.early.set(ref, marker);
      return;
    }
    if (e.replayedBy === undefined) this.replayedCount++;
    e.replayedBy = marker;
    this.settle();
  }

  private settle(): void {
    this.waiters = this.waiters.filter((w) => {
      const all = w.positions.every((p) => this.byPosition.get(p)?.replayedBy !== undefined);
      if (all) w.done();
      return !all;
    });
  }
}

/** Index of the first entry after `offset` (entries are in offset order). */
function firstAfter(list: readonly DlqItem[], offset: bigint): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (BigInt(list[mid]!.offset) <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
