import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import { afterEach, beforeEach } from 'vitest';
import { createTaskTopics, deleteTopics } from '../../kit/kafka.js';
import { brokers, kafka as testsKafka, TopicReader, uniqueName } from './kafka.js';
import { killAll, startCli } from './processes.js';
import type { RunningCli } from './processes.js';
import { waitFor } from '../../kit/wait.js';
import type { TaskMessage } from '../../../src/shared/codecs/task-message.js';

export interface Entry {
  Id: string;
  Cron: string;
  Topic: string;
  Misfire?: string;
  JitterSeconds?: number;
  TaskMessageTemplate: { TaskProcessorName: string };
}

export async function groupScheduleFile(entries: Entry[]): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'tm-group-')), 'schedule.json');
  await writeFile(file, JSON.stringify(entries));
  return file;
}

export const iso = (ms: number): string => new Date(ms).toISOString();
export const second = (ms: number): number => Math.floor(ms / 1000) * 1000;

/** The cluster a scheduler group runs on: its bootstrap servers and a client of it. */
export interface GroupCluster {
  bootstrap(): string;
  kafka(): Kafka;
}

const testsBroker: GroupCluster = { bootstrap: brokers, kafka: testsKafka };

/**
 * A fresh task topic, scheduler group and reader for each test of the calling suite, with what the scheduler
 * group tests ask of them, on the tests' broker unless told another `cluster`. Read the fields inside tests.
 */
export function useSchedulerGroup(cluster: GroupCluster = testsBroker) {
  const s = { topic: '', group: '', reader: undefined as TopicReader | undefined };
  beforeEach(async () => {
    s.topic = uniqueName('tasks');
    s.group = uniqueName('taskscheduler');
    await createTaskTopics(cluster.kafka(), [s.topic], 12);
    s.reader = await new TopicReader([s.topic], cluster.kafka).start();
  });
  afterEach(async () => {
    await killAll();
    await s.reader?.stop();
    await deleteTopics(cluster.kafka(), [s.topic]);
  });

  const reader = (): TopicReader => {
    if (!s.reader) throw new Error('useSchedulerGroup: read the reader inside a test');
    return s.reader;
  };
  /** `n` entries firing every second, named e0…e(n-1). */
  const entries = (n: number, misfire?: (i: number) => string): Entry[] =>
    Array.from({ length: n }, (_, i) => ({
      Id: `e${i}`,
      Cron: '* * * * * *',
      Topic: s.topic,
      ...(misfire ? { Misfire: misfire(i) } : {}),
      TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor' },
    }));
  const scheduler = (file: string): RunningCli =>
    startCli('taskscheduler', ['-b', cluster.bootstrap(), '-s', file, '--group', s.group]);
  const tasks = (): TaskMessage[] => reader().values<TaskMessage>(s.topic);
  const firedBy = (pid: number): number => tasks().filter((t) => t.scheduler.pid === pid).length;
  /**
   * The last full second (300 ms ago at least) when every one of `count` entries fired once, and each pid fired
   * some of them; undefined when that second is not so.
   */
  const settledSecond = (count: number, ...pids: number[]): number | undefined => {
    const last = second(Date.now() - 300) - 1000;
    const inLast = tasks().filter((t) => Date.parse(t.scheduledFor) === last);
    const ok =
      pids.every((p) => inLast.some((t) => t.scheduler.pid === p)) &&
      new Set(inLast.map((t) => t.taskId)).size === count;
    return ok ? last : undefined;
  };
  const entriesFiredIn = (pid: number, at: number): Set<string> =>
    new Set(
      tasks()
        .filter((t) => t.scheduler.pid === pid && Date.parse(t.scheduledFor) === at)
        .map((t) => t.scheduleId),
    );
  /** taskIds published more than once. */
  const duplicates = (): Array<[string, number]> => {
    const seen = new Map<string, number>();
    for (const t of tasks()) seen.set(t.taskId, (seen.get(t.taskId) ?? 0) + 1);
    return [...seen].filter(([, n]) => n > 1);
  };
  /**
   * Starts two instances on a file of `count` entries, waits until they have split them, sends `signal` to the
   * first and waits until the second fires one of the first's entries (at `takenOverAt`). `before` is the last
   * full second before the signal.
   */
  const splitThenSignal = async (file: string, count: number, signal: NodeJS.Signals) => {
    const a = scheduler(file);
    const b = scheduler(file);
    await waitFor(() => firedBy(a.pid) > 0 && firedBy(b.pid) > 0, { timeoutMs: 60_000, what: 'both firing' });
    await waitFor(() => settledSecond(count, a.pid, b.pid), { timeoutMs: 30_000, what: 'a settled split' });
    const before = second(Date.now()) - 1000;
    const aEntries = entriesFiredIn(a.pid, before);
    a.signal(signal);
    const at = Date.now();
    // When b first fired one of a's entries (after the signal): its takeover.
    const takenOver = () => {
      const byB = tasks().filter(
        (t) => t.scheduler.pid === b.pid && aEntries.has(t.scheduleId) && Date.parse(t.firedAt) > at,
      );
      return byB.length === 0 ? undefined : Math.min(...byB.map((t) => Date.parse(t.firedAt)));
    };
    const takenOverAt = await waitFor(takenOver, { timeoutMs: 60_000, what: "b to take over a's entries" });
    return { a, b, aEntries, before, at, takenOverAt };
  };

  return {
    get topic() {
      return s.topic;
    },
    get group() {
      return s.group;
    },
    reader,
    entries,
    scheduler,
    tasks,
    firedBy,
    settledSecond,
    duplicates,
    splitThenSignal,
  };
}
