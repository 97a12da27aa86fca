import { dlqTopicOf } from '../shared/codecs/dlq-record.js';
import type { DlqEntry } from '../shared/codecs/dlq-record.js';

/** `dlq list` as text: one line per waiting task (and per replayed one with `all`). */
export function formatDlq(topic: string, entries: readonly DlqEntry[], all: boolean): string {
  const shown = all ? entries : entries.filter((e) => !e.replayedBy);
  const waiting = entries.filter((e) => !e.replayedBy).length;
  const lines = shown.map((e) => {
    const state = e.replayedBy ? `replayed (marker ${e.replayedBy})` : 'waiting';
    return (
      `${e.partition}@${e.offset}  ${e.taskId ?? `(no taskId; key ${JSON.stringify(e.key)})`}  ${e.reason}` +
      `  attempts=${e.attempts}  failedAt=${e.failedAt}  from=${e.originalTopic}/${e.originalPartition}@${e.originalOffset}` +
      `  ${state}\n    ${e.error}`
    );
  });
  lines.push(`${dlqTopicOf(topic)}: ${waiting} waiting, ${entries.length - waiting} replayed`);
  return lines.join('\n');
}
