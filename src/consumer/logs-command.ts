import { AppError } from '../shared/errors.js';
import { partitionForKey } from '../shared/kafka/index.js';
import type { Follower, InRecord, KafkaClient } from '../shared/kafka/index.js';
import { TASK_ID_HEADER } from '../shared/codecs/task-event.js';
import { LOGS_TOPIC, parseRunLogChunk, RunLogFold } from '../shared/codecs/run-log.js';
import type { Dropped, RunLogChunk, ShownLine } from '../shared/codecs/run-log.js';

/** One line as `taskconsumer logs` prints it: time, attempt, stream, text. */
export function formatLogLine(l: ShownLine): string {
  return `${l.at} #${l.attempt} ${l.stream.padEnd(8)} ${l.text}`;
}

function droppedLine(d: Dropped): string {
  return `… ${d.lines} line(s) and ${d.bytes} byte(s) of this run not kept (a run keeps its last 1,000 lines or 64 KiB; long lines are cut)`;
}

/** The chunk of `taskId` a record holds, if it is one. */
function chunkOf(r: InRecord, taskId: string): RunLogChunk | undefined {
  if (r.headers[TASK_ID_HEADER] !== taskId) return undefined;
  const c = parseRunLogChunk(r.value);
  return c?.taskId === taskId ? c : undefined;
}

/**
 * `taskconsumer logs TASKID`: the run's log as taskapi shows it (its bounded tail), read from the one partition of
 * `taskmanager.logs` its key goes to. With `follow`, then prints each new chunk of it as it comes, until `stop`.
 */
export async function runLogs(
  kafka: KafkaClient,
  taskId: string,
  o: { follow: boolean; write(text: string): void; stop?: AbortSignal },
): Promise<void> {
  if (!(await kafka.existingTopics([LOGS_TOPIC])).has(LOGS_TOPIC))
    throw new AppError(
      'USAGE',
      `${LOGS_TOPIC} does not exist: run logs are not kept (create it with scripts/create-topics.sh)`,
    );
  const partition = partitionForKey(taskId, await kafka.partitionCount(LOGS_TOPIC));
  // Taken before the read: following starts at or after them, so nothing written meanwhile is missed.
  const ends = await kafka.endOffsets(LOGS_TOPIC);
  const records = await kafka.readToEnd(LOGS_TOPIC, 60_000, undefined, [partition]);
  const fold = new RunLogFold();
  let last = -1n;
  for (const r of records) {
    last = BigInt(r.offset) > last ? BigInt(r.offset) : last;
    const c = chunkOf(r, taskId);
    if (c) fold.add(c);
  }
  const view = fold.view();
  if (view.dropped.lines > 0 || view.dropped.bytes > 0) o.write(`${droppedLine(view.dropped)}\n`);
  for (const l of view.lines) o.write(`${formatLogLine(l)}\n`);
  if (!o.follow) {
    if (records.every((r) => !chunkOf(r, taskId))) o.write(`no log lines of ${taskId} in ${LOGS_TOPIC}\n`);
    return;
  }
  await follow(kafka, taskId, partition, ends, last, o);
}

async function follow(
  kafka: KafkaClient,
  taskId: string,
  partition: number,
  ends: Map<number, bigint>,
  lastRead: bigint,
  o: { write(text: string): void; stop?: AbortSignal },
): Promise<void> {
  const from = new Map<number, string>();
  for (const [p, end] of ends)
    from.set(p, (p === partition && lastRead + 1n > end ? lastRead + 1n : end).toString());
  const dropped = new Map<number, number>();
  const follower: Follower = await kafka.follow(
    LOGS_TOPIC,
    (r) => {
      const c = chunkOf(r, taskId);
      if (!c) return;
      if (c.gap) o.write(`… lines of attempt ${c.attempt} dropped before these\n`);
      const before = dropped.get(c.attempt) ?? 0;
      if (c.dropped && c.dropped.lines > before && !c.gap)
        o.write(`… ${c.dropped.lines - before} line(s) of attempt ${c.attempt} dropped\n`);
      if (c.dropped) dropped.set(c.attempt, c.dropped.lines);
      for (const l of c.lines) o.write(`${formatLogLine({ ...l, attempt: c.attempt })}\n`);
    },
    { fromOffsets: from },
  );
  try {
    await new Promise<void>((resolve) => {
      if (o.stop?.aborted) return resolve();
      o.stop?.addEventListener('abort', () => resolve(), { once: true });
    });
  } finally {
    await follower.stop();
  }
}
