import type { DlqReason } from '../shared/messages.js';
import type { InRecord, OutRecord } from '../shared/kafka/index.js';

export function dlqTopicOf(topic: string): string {
  return `${topic}.dlq`;
}

/**
 * The DLQ copy of a record: original key, value and headers untouched, plus the `dlq-*` headers of
 * docs/messages-and-topics.md#dead-letter-records.
 */
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
      'dlq-error': error.slice(0, 2000),
      'dlq-attempts': String(attempts),
      'dlq-original-topic': rec.topic,
      'dlq-original-partition': String(rec.partition),
      'dlq-original-offset': rec.offset,
      'dlq-failed-at': new Date(failedAtMs).toISOString(),
    },
  };
}
