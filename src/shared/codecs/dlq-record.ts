import type { InRecord, OutRecord, RecordHeaders } from '../kafka/types.js';

/**
 * The records of a task topic's DLQ (`<topic>.dlq`, docs/messages-and-topics.md#dead-letter-records): the failed record with its key, value
 * and headers untouched plus the `dlq-*` headers, and the marker record a replay leaves (header
 * {@link REPLAYED_HEADER}); also the copy a replay re-publishes to the task topic.
 */

export type DlqReason = 'decode-error' | 'unknown-processor' | 'non-retriable' | 'attempts-exhausted';

/** Header of the marker record a replay leaves in the DLQ: `<partition>@<offset>` of the replayed record. */
export const REPLAYED_HEADER = 'dlq-replayed';

/** Header of a replayed task on its task topic: `<dlq topic>/<partition>@<offset>` it came from. */
export const REPLAYED_FROM_HEADER = 'replayed-from';

/** Every header the DLQ adds starts with this (a replay strips them). */
const DLQ_HEADER_PREFIX = 'dlq-';

/** Longest `dlq-error` kept. */
const MAX_ERROR_CHARS = 2000;

export function dlqTopicOf(topic: string): string {
  return `${topic}.dlq`;
}

/** The DLQ copy of a record: original key, value and headers untouched, plus the `dlq-*` headers. */
export function dlqRecord(
  rec: InRecord,
  reason: DlqReason,
  error: string,
  attempts: number,
  failedAtMs: number,
): OutRecord {
  return {
    topic: dlqTopicOf(rec.topic),
    key: rec.key === null ? null : rec.key.toString('utf8'),
    value: rec.value,
    headers: {
      ...rec.headers,
      'dlq-reason': reason,
      'dlq-error': error.slice(0, MAX_ERROR_CHARS),
      'dlq-attempts': String(attempts),
      'dlq-original-topic': rec.topic,
      'dlq-original-partition': String(rec.partition),
      'dlq-original-offset': rec.offset,
      'dlq-failed-at': new Date(failedAtMs).toISOString(),
    },
  };
}

/** One dead-lettered task, as `dlq list` shows it. */
export interface DlqEntry {
  partition: number;
  offset: string;
  taskId: string | undefined;
  key: string | null;
  reason: string;
  error: string;
  attempts: string;
  failedAt: string;
  originalTopic: string;
  originalPartition: string;
  originalOffset: string;
  /** Set when a replay re-published it: where its marker is. */
  replayedBy?: string;
  record: InRecord;
}

/** What the `dlq-*` headers of one DLQ record say (a replay marker is read as one too: check REPLAYED_HEADER first). */
export function dlqEntryOf(r: InRecord): DlqEntry {
  const h = r.headers;
  return {
    partition: r.partition,
    offset: r.offset,
    taskId: h['task-id'],
    key: r.key === null ? null : r.key.toString('utf8'),
    reason: h['dlq-reason'] ?? '?',
    error: h['dlq-error'] ?? '',
    attempts: h['dlq-attempts'] ?? '?',
    failedAt: h['dlq-failed-at'] ?? '?',
    originalTopic: h['dlq-original-topic'] ?? '?',
    originalPartition: h['dlq-original-partition'] ?? '?',
    originalOffset: h['dlq-original-offset'] ?? '?',
    record: r,
  };
}

/** The task a replay re-publishes to `topic`: the original key, value and headers, without the `dlq-*` ones. */
export function replayedTaskRecord(topic: string, e: DlqEntry): OutRecord {
  const headers: RecordHeaders = Object.fromEntries(
    Object.entries(e.record.headers).filter(([k]) => !k.startsWith(DLQ_HEADER_PREFIX)),
  );
  headers[REPLAYED_FROM_HEADER] = `${dlqTopicOf(topic)}/${e.partition}@${e.offset}`;
  return { topic, key: e.key, value: e.record.value, headers };
}

/** The marker a replay leaves in the DLQ of `topic`, on the replayed record's partition, so it is not replayed twice. */
export function replayMarkerRecord(topic: string, e: DlqEntry): OutRecord {
  return {
    topic: dlqTopicOf(topic),
    key: e.key,
    value: null,
    headers: {
      [REPLAYED_HEADER]: `${e.partition}@${e.offset}`,
      ...(e.taskId ? { 'task-id': e.taskId } : {}),
    },
    partition: e.partition,
  };
}
