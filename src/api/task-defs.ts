/**
 * Where taskapi keeps the task definitions it folded from `taskmanager.tasks`, beside the compact index it holds in
 * memory (task-view.ts): on disk (disk-task-defs.ts, what `taskapi` runs with) or in memory (views built in tests
 * and by short-lived commands). Writes are staged in log order and kept together with the offset of each
 * partition they reach, so whatever is stored is the fold of the topic up to its checkpoint.
 */

/** What lists, filters and pages need of a present task: small fixed fields, no payload. */
export interface IndexFields {
  /** The version of its current state (see shared/tasks/task-log.ts). */
  version: string;
  createdAt: string;
  group: string;
  processor: string;
  enabled: boolean;
}

/** How far a store has folded `taskmanager.tasks`, and of which topic on which cluster. */
export interface Checkpoint {
  clusterId: string;
  topic: string;
  /** The topic's partition count when the store was made. */
  partitions: number;
  /** partition → the next offset to read (every record before it is folded in). */
  offsets: Map<number, string>;
  /** When this checkpoint was written, ms since the epoch. */
  savedAt: number;
}

export interface TaskDefs {
  /** For log lines: the store's path, or `memory`. */
  readonly where: string;
  /** Every present task's index fields (at start: the index is built from them). */
  indexed(): Iterable<[string, IndexFields]>;
  /** Keys whose last record was rejected and not repaired yet. */
  unrepairedKeys(): Iterable<string>;
  /** The stored definition (the record's JSON) of a present task. */
  definition(id: string): Buffer | undefined;
  /** The version of a deleted key's tombstone (the write rules need it), undefined for a key never seen. */
  deletedVersion(id: string): string | undefined;
  put(id: string, fields: IndexFields, value: Buffer): void;
  /** Deletes one definition; the key keeps the tombstone's version, and `atMs`, its record's timestamp. */
  remove(id: string, version: string, atMs: number): void;
  /**
   * Forgets deleted keys whose tombstone is older than `cutoffMs` (the topic's `delete.retention.ms` ago: compaction
   * may have removed it, and a reader of the topic from its start does not know the key either). Resolves to how
   * many were forgotten.
   */
  forgetDeletedBefore(cutoffMs: number): Promise<number>;
  markUnrepaired(id: string, unrepaired: boolean): void;
  /** The record at `offset` of `partition` is folded in (whether it changed anything or not). */
  applied(partition: number, offset: string): void;
  /** The offsets applied so far (the next to read per partition), including what is not flushed yet. */
  offsets(): ReadonlyMap<number, string>;
  /** Resolves once everything staged before the call is stored with its offsets. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** One batch of staged writes: what a read sees before the store has it. */
export class StagedWrites {
  readonly defs = new Map<
    string,
    { fields: IndexFields; value: Buffer } | { deleted: string; atMs: number }
  >();
  readonly unrepaired = new Map<string, boolean>();
  readonly offsets = new Map<number, string>();

  get size(): number {
    return this.defs.size + this.unrepaired.size;
  }
}

/** Definitions in the heap (no checkpoint survives the process). */
export class MemoryTaskDefs implements TaskDefs {
  readonly where = 'memory';
  private readonly present = new Map<string, { fields: IndexFields; value: Buffer }>();
  private readonly deleted = new Map<string, { version: string; atMs: number }>();
  private readonly unrepaired = new Set<string>();
  private readonly appliedOffsets = new Map<number, string>();

  indexed(): Iterable<[string, IndexFields]> {
    return [...this.present].map(([id, t]) => [id, t.fields]);
  }

  unrepairedKeys(): Iterable<string> {
    return this.unrepaired;
  }

  definition(id: string): Buffer | undefined {
    return this.present.get(id)?.value;
  }

  deletedVersion(id: string): string | undefined {
    return this.deleted.get(id)?.version;
  }

  put(id: string, fields: IndexFields, value: Buffer): void {
    this.present.set(id, { fields, value });
    this.deleted.delete(id);
  }

  remove(id: string, version: string, atMs: number): void {
    this.present.delete(id);
    this.deleted.set(id, { version, atMs });
  }

  forgetDeletedBefore(cutoffMs: number): Promise<number> {
    let n = 0;
    for (const [id, d] of this.deleted)
      if (d.atMs < cutoffMs) {
        this.deleted.delete(id);
        n++;
      }
    return Promise.resolve(n);
  }

  markUnrepaired(id: string, unrepaired: boolean): void {
    if (unrepaired) this.unrepaired.add(id);
    else this.unrepaired.delete(id);
  }

  applied(partition: number, offset: string): void {
    this.appliedOffsets.set(partition, (BigInt(offset) + 1n).toString());
  }

  offsets(): ReadonlyMap<number, string> {
    return this.appliedOffsets;
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
