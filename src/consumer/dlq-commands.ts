import { hostname } from 'node:os';
import { topicNameProblem } from '../shared/config/topic-name.js';
import { AppError } from '../shared/errors.js';
import { encodeJson, EVENTS_TOPIC } from '../shared/messages.js';
import type { StatusEvent } from '../shared/messages.js';
import type { InRecord, KafkaClient, OutRecord } from '../shared/kafka/index.js';
import { dlqTopicOf } from './dlq.js';

/** Header of the marker record a replay leaves in the DLQ: `<partition>@<offset>` of the replayed record. */
export const REPLAYED_HEADER = 'dlq-replayed';

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

/** The DLQ's records folded with the replay markers: which tasks are still waiting, which were replayed. */
export function foldDlq(records: readonly InRecord[]): DlqEntry[] {
  const replayed = new Map<string, string>();
  for (const r of records) {
    const ref = r.headers[REPLAYED_HEADER];
    if (ref) replayed.set(ref, `${r.partition}@${r.offset}`);
  }
  return records
    .filter((r) => r.headers[REPLAYED_HEADER] === undefined)
    .map((r) => {
      const replayedBy = replayed.get(`${r.partition}@${r.offset}`);
      return { ...dlqEntryOf(r), ...(replayedBy === undefined ? {} : { replayedBy }) };
    });
}

export async function listDlq(kafka: KafkaClient, topic: string): Promise<DlqEntry[]> {
  const dlq = dlqTopicOf(topic);
  if ((await kafka.existingTopics([dlq])).size === 0) {
    throw new AppError(
      'USAGE',
      `${dlq} does not exist (create it with scripts/create-topics.sh --topic ${topic})`,
    );
  }
  return foldDlq(await kafka.readToEnd(dlq));
}

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

export type ReplaySelector = { taskId: string } | { position: string } | { all: true };

/** A waiting DLQ record a replay would not re-publish, and why, in one line. */
export interface ReplayRefusal {
  entry: DlqEntry;
  line: string;
}

/** What a replay did: the entries it re-published, and those it refused (left waiting in the DLQ). */
export interface ReplayOutcome {
  replayed: DlqEntry[];
  refused: ReplayRefusal[];
}

/**
 * Why `e`, read from the DLQ of `topic`, may not be replayed, or `undefined`. A DLQ holds the failures of one task
 * topic, so a replay writes only there: the `dlq-original-topic` header is data anyone who can write to the DLQ
 * chose, and naming another topic (`taskmanager.users`, another application's) must not make a replay write to it.
 */
export function replayRefusal(topic: string, e: DlqEntry): string | undefined {
  if (e.originalTopic === '?' || e.originalTopic === topic) return undefined;
  const dlq = dlqTopicOf(topic);
  // Quoted when it is no topic name at all (a newline in it would otherwise break the line).
  const named = topicNameProblem(e.originalTopic) ? JSON.stringify(e.originalTopic) : e.originalTopic;
  return `${dlq} partition ${e.partition} offset ${e.offset}: not replayed: its dlq-original-topic header names ${named}, but ${dlq} replays only to ${topic} (the record stays in the DLQ)`;
}

/**
 * Re-publishes dead-lettered tasks to their task topic (`topic`, whose DLQ they are in): for each, in one
 * transaction, the original key, value and headers (without the `dlq-*` ones), a marker record in the DLQ so it is
 * not replayed twice, and a `REPLAYED` event. A record whose header names another topic is refused (see
 * {@link replayRefusal}) and left waiting. The transactional id is per DLQ, so two replays of one DLQ at once fence
 * each other.
 */
export async function replayDlq(
  kafka: KafkaClient,
  topic: string,
  selector: ReplaySelector,
): Promise<ReplayOutcome> {
  const waiting = (await listDlq(kafka, topic)).filter((e) => !e.replayedBy);
  const selected = waiting.filter((e) =>
    'all' in selector
      ? true
      : 'taskId' in selector
        ? e.taskId === selector.taskId
        : `${e.partition}@${e.offset}` === selector.position,
  );
  const refused: ReplayRefusal[] = [];
  const chosen: DlqEntry[] = [];
  for (const entry of selected) {
    const line = replayRefusal(topic, entry);
    if (line === undefined) chosen.push(entry);
    else refused.push({ entry, line });
  }
  if (chosen.length === 0) return { replayed: [], refused };
  const producer = kafka.producer({ transactionalId: `taskmanager-dlq-replay-${dlqTopicOf(topic)}` });
  await producer.connect();
  try {
    const origin = { host: hostname(), pid: process.pid };
    for (const e of chosen) {
      const headers = Object.fromEntries(
        Object.entries(e.record.headers).filter(([k]) => !k.startsWith('dlq-')),
      );
      headers['replayed-from'] = `${dlqTopicOf(topic)}/${e.partition}@${e.offset}`;
      const records: OutRecord[] = [
        {
          topic,
          key: e.key,
          value: e.record.value,
          headers,
        },
        {
          topic: dlqTopicOf(topic),
          key: e.key,
          value: null,
          headers: {
            [REPLAYED_HEADER]: `${e.partition}@${e.offset}`,
            ...(e.taskId ? { 'task-id': e.taskId } : {}),
          },
          partition: e.partition,
        },
      ];
      if (e.taskId) {
        const event: StatusEvent = {
          v: 1,
          taskId: e.taskId,
          scheduleId: e.key ?? '',
          status: 'REPLAYED',
          at: new Date().toISOString(),
          attempt: 0,
          by: { ...origin, role: 'operator' },
        };
        records.push({
          topic: EVENTS_TOPIC,
          key: e.taskId,
          value: encodeJson(event),
          headers: { 'task-id': e.taskId },
        });
      }
      await producer.sendInTransaction(records);
    }
  } finally {
    await producer.disconnect();
  }
  return { replayed: chosen, refused };
}
