import { hostname } from 'node:os';
import { topicNameProblem } from './config/topic-name.js';
import { AppError } from './errors.js';
import {
  dlqEntryOf,
  dlqTopicOf,
  REPLAYED_HEADER,
  replayedTaskRecord,
  replayMarkerRecord,
} from './codecs/dlq-record.js';
import type { DlqEntry } from './codecs/dlq-record.js';
import { statusEvent, statusEventRecord } from './codecs/task-event.js';
import type { InRecord, KafkaClient, OutRecord } from './kafka/index.js';

/**
 * The DLQ operations `taskconsumer dlq` and taskapi share: list a task topic's DLQ folded with its replay markers,
 * and replay dead-lettered tasks to their task topic.
 */

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
      const records: OutRecord[] = [replayedTaskRecord(topic, e), replayMarkerRecord(topic, e)];
      if (e.taskId) {
        const ids = { taskId: e.taskId, scheduleId: e.key ?? '' };
        const at = new Date().toISOString();
        records.push(statusEventRecord(statusEvent(ids, 'REPLAYED', at, 0, { ...origin, role: 'operator' })));
      }
      await producer.sendInTransaction(records);
    }
  } finally {
    await producer.disconnect();
  }
  return { replayed: chosen, refused };
}
