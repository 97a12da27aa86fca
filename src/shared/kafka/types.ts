/** Record headers as strings (we only write UTF-8 headers). */
export type RecordHeaders = Record<string, string>;

/** A record to produce. */
export interface OutRecord {
  topic: string;
  key: string | null;
  /** A string is sent as its UTF-8 bytes. */
  value: Buffer | string | null;
  headers?: RecordHeaders;
  /** Explicit partition; otherwise the murmur2 partitioner of the Java client picks it from the key. */
  partition?: number;
}

/** A record as consumed. */
export interface InRecord {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: RecordHeaders;
  timestamp: string;
}

/**
 * One fetched batch of one partition, as a runner of a consumer group handles it: the records, where the batch ends,
 * and how the runner tells the group what it finished and that it is alive. Ours, whatever client fetched it (built
 * from kafkajs's payload in records.ts); its failures are classified by the predicates of errors.ts.
 */
export interface PartitionBatch {
  topic: string;
  partition: number;
  /** The partition's end offset when the batch was fetched (the next offset to be written): lag is measured to it. */
  highWatermark: string;
  /** The records to process, in offset order (transaction markers and aborted records left out). */
  records: InRecord[];
  /** Offset of the last record in the fetch, control records included: resolving it moves past trailing markers. */
  lastOffset(): string;
  /** Marks `offset` and everything before it done; committed by the next commit (or when the batch ends). */
  resolveOffset(offset: string): void;
  /** Commits what is resolved when it moved; rejects with a rebalance (isRebalancing in errors.ts) when the group moved. */
  commitIfNecessary(): Promise<void>;
  /**
   * Commits these positions (the offset of the next record to read) for the member's group, whatever is resolved:
   * for a member that resolves records as it takes them (its fetch moves on) and commits only what finished.
   */
  commitOffsets(offsets: readonly CommitPosition[]): Promise<void>;
  /** Tells the coordinator this member is alive during long work; rejects with a rebalance when the group moves. */
  heartbeat(): Promise<void>;
  /** False once the consumer stops: take no new records. */
  isRunning(): boolean;
  /** True when the partition was seeked or taken away meanwhile: take no new records. */
  isStale(): boolean;
}

/** Where a group resumes reading a partition: the offset of the next record. */
export interface CommitPosition {
  topic: string;
  partition: number;
  offset: string;
}

export interface GroupAssignment {
  memberId: string;
  /** topic → partitions assigned to this member. */
  assignment: Record<string, number[]>;
}
