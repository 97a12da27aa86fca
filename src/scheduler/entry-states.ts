import type { InRecord, PartitionBatch } from '../shared/kafka/index.js';
import type { Fire } from './fire-loop.js';
import { parseState, specHashOf } from '../shared/codecs/scheduler-state.js';
import type { EntryState } from '../shared/codecs/scheduler-state.js';
import type { DeadlineTimers } from './deadlines.js';

/**
 * What this instance knows of each entry from the state topic and from its own commits: the last fired instant
 * (it only moves forward), whether the entry is paused, and the spec hash of the last record.
 */
export class EntryStates {
  private readonly byId = new Map<string, EntryState>();

  /** @param deadlines the view of the deadline timers, which the state topic also holds (`deadlines.ts`). */
  constructor(
    private readonly group: string,
    private readonly deadlines?: DeadlineTimers,
  ) {}

  get(id: string): EntryState | undefined {
    return this.byId.get(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  lastFiredMs(id: string): number | undefined {
    return this.byId.get(id)?.lastFiredMs;
  }

  /** Fires counted for the entry's MaxRuns (0 when none are known). */
  runs(id: string): number {
    return this.byId.get(id)?.runs ?? 0;
  }

  isPaused(id: string): boolean {
    return this.byId.get(id)?.paused ?? false;
  }

  set(id: string, state: EntryState): void {
    this.byId.set(id, state);
  }

  /** Every record of a fetched batch of the state topic: our group's keys update the last fired instants. */
  foldBatch(b: PartitionBatch): void {
    const prefix = `${this.group}/`;
    const first = b.records[0];
    if (first) this.deadlines?.reading(b.partition, BigInt(first.offset), BigInt(b.lastOffset()));
    for (const r of b.records) this.foldRecord(prefix, r, b.partition);
    // Without this the next fetch starts where this one did: a partition longer than one fetch (1 MiB) was
    // re-read forever and its takeover never finished.
    b.resolveOffset(b.lastOffset());
  }

  private foldRecord(prefix: string, r: InRecord, partition: number): void {
    const key = r.key?.toString('utf8');
    if (!key?.startsWith(prefix)) return;
    if (this.deadlines?.foldRecord(partition, key, r.value)) return;
    const id = key.slice(prefix.length);
    const s = parseState(r.value);
    if (!s) return;
    // The last fired instant and the run count only move forward (a record without a count, from an older version,
    // keeps the one known); pause and the spec hash are the latest record's.
    const prev = this.byId.get(id);
    this.byId.set(id, {
      ...s,
      lastFiredMs: Math.max(s.lastFiredMs, prev?.lastFiredMs ?? -Infinity),
      runs: Math.max(s.runs, prev?.runs ?? 0),
    });
  }

  /**
   * Fires were committed: each entry's last fired instant moves to its latest, and its run count to that fire's
   * (manual fires move nothing).
   */
  acked(fires: readonly Fire[]): void {
    for (const f of fires) {
      if (f.manual) continue;
      const prev = this.byId.get(f.entry.id);
      if (!prev || prev.lastFiredMs < f.scheduledFor)
        this.byId.set(f.entry.id, {
          lastFiredMs: f.scheduledFor,
          specHash: specHashOf(f.entry),
          paused: prev?.paused ?? false,
          runs: Math.max(prev?.runs ?? 0, f.run ?? 0),
        });
    }
  }
}
