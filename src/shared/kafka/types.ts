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

/** One fetched batch of one partition, with the hooks a runner needs. */
export interface PartitionBatch {
  topic: string;
  partition: number;
  highWatermark: string;
  records: InRecord[];
  /** Offset of the last record in the fetch, control records included. */
  lastOffset(): string;
  /** Marks `offset` and everything before it done; committed later by the client. */
  resolveOffset(offset: string): void;
  commitIfNecessary(): Promise<void>;
  heartbeat(): Promise<void>;
  /** False once stop() was called: take no new records. */
  isRunning(): boolean;
  /** True when the partition was seeked or revoked meanwhile. */
  isStale(): boolean;
}

export interface GroupAssignment {
  memberId: string;
  /** topic → partitions assigned to this member. */
  assignment: Record<string, number[]>;
}
