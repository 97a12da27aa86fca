import type { ScheduleEntry } from '../shared/config/schema.js';
import { taskIdFor } from '../shared/codecs/task-message.js';
import { partitionForKey } from '../shared/kafka/index.js';
import type { InRecord, KafkaClient } from '../shared/kafka/index.js';
import type { Fire } from './fire-loop.js';
import { timesOf } from './fire-loop.js';

/**
 * The parts of a backfill (docs/operations.md#backfill) that need no owner: which instants of a schedule a range
 * holds, which of them already have a task (read from the schedule's task topic), and the fires of the others.
 * EntryControl runs them on the owner of the schedule.
 */

/** How long reading the partition of a schedule's task topic may take. */
export const TASK_READ_TIMEOUT_MS = 60_000;

/**
 * The instants of `e`'s schedule from `fromMs` to `toMs` (both included), oldest first: its spec in its zone (DST as
 * the fire loop has it), inside its StartAt/EndAt window, nominal (the taskIds' instants, before any jitter). At
 * most `max`; `beyond` is the next one when the range holds more.
 */
export function instantsOf(
  e: ScheduleEntry,
  fromMs: number,
  toMs: number,
  max: number,
): { instants: number[]; beyond?: number } {
  const { compiled } = timesOf(e);
  const instants: number[] = [];
  for (let t = compiled.nextAfter(fromMs - 1); t !== undefined && t <= toMs; t = compiled.nextAfter(t)) {
    if (instants.length === max) return { instants, beyond: t };
    instants.push(t);
  }
  return { instants };
}

/** The instants of a range by what a backfill does with them, each list oldest first. */
export interface SortedInstants {
  /** No task yet, and reached by the schedule: to publish. */
  missing: number[];
  /** A task with its taskId exists. */
  present: number[];
  /** After `reachMs`: the schedule's own to fire (or never, past its MaxRuns). */
  pending: number[];
}

/**
 * Sorts the instants of a range: those with a task among `published` (taskIds) are present; of the others, those
 * at or before `reachMs` (the last instant the schedule has reached) are missing, later ones pending.
 */
export function sortInstants(
  scheduleId: string,
  instants: readonly number[],
  published: ReadonlySet<string>,
  reachMs: number,
): SortedInstants {
  const out: SortedInstants = { missing: [], present: [], pending: [] };
  for (const t of instants) {
    if (published.has(taskIdFor(scheduleId, t))) out.present.push(t);
    else if (t <= reachMs) out.missing.push(t);
    else out.pending.push(t);
  }
  return out;
}

/** The fire that backfills instant `t` of `e`: its taskId and task message are those a fire of the loop has. */
export function backfillFire(e: ScheduleEntry, t: number): Fire {
  return {
    entry: e,
    scheduledFor: t,
    // With jitter the message says when the fire was due, as any fire of `t` would; it is published now all the same.
    ...(e.jitter ? { dueAt: timesOf(e).dueOf(t) } : {}),
    manual: true,
    backfill: true,
  };
}

/**
 * The taskIds of schedule `scheduleId` among records of its task topic: the `task-id` header, or the value's
 * `taskId` for a record without headers (written by another producer).
 */
export function taskIdsIn(records: readonly InRecord[], scheduleId: string): Set<string> {
  const out = new Set<string>();
  for (const r of records) {
    if (r.key?.toString('utf8') !== scheduleId) continue;
    const header = r.headers['task-id'];
    if (header !== undefined) {
      out.add(header);
      continue;
    }
    try {
      const { taskId } = JSON.parse(r.value?.toString('utf8') ?? 'null') as { taskId?: unknown };
      if (typeof taskId === 'string') out.add(taskId);
    } catch {
      // not a task message: no task
    }
  }
  return out;
}

/** The tasks of a schedule its task topic holds. */
export interface PublishedTasks {
  taskIds: Set<string>;
  /**
   * When the partition no longer starts at offset 0 (retention deleted its oldest records): when the oldest record
   * it still holds was written. A task of an instant before it may have been deleted rather than never published.
   */
  keptSinceMs?: number;
}

/**
 * Every taskId of `e` in its task topic: the partition its Id hashes to (the key of its task messages), read to its
 * end, read_committed. Tasks the topic's retention deleted are not seen: `keptSinceMs` says since when it holds all.
 */
export async function publishedTaskIds(
  kafka: KafkaClient,
  e: ScheduleEntry,
  timeoutMs = TASK_READ_TIMEOUT_MS,
): Promise<PublishedTasks> {
  const partition = partitionForKey(e.id, await kafka.partitionCount(e.topic));
  const records = await kafka.readToEnd(e.topic, timeoutMs, undefined, [partition]);
  const first = records[0];
  return {
    taskIds: taskIdsIn(records, e.id),
    ...(first && first.offset !== '0' ? { keptSinceMs: Number(first.timestamp) } : {}),
  };
}
