import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brokers, produce, uniqueName } from './kafka.js';
import { startCli } from './processes.js';
import type { RunningCli } from './processes.js';
import type { TopicReader } from './kafka.js';
import { parseStatusEvents } from '../../../src/shared/codecs/task-event.js';
import type { StatusEvent } from '../../../src/shared/codecs/task-event.js';
import { taskMessageOf, taskRecord } from '../../../src/shared/codecs/task-message.js';
import type { TaskMessage } from '../../../src/shared/codecs/task-message.js';

export const EVENTS = 'taskmanager.events';

/** A valid task message (docs/messages-and-topics.md#task-message) as a scheduler would publish it. */
export function taskMessage(
  scheduleId: string,
  processor: string,
  payload?: unknown,
  atMs = Date.now(),
): TaskMessage {
  return taskMessageOf({ scheduleId, processor, payload }, atMs, atMs, {
    group: 'tests',
    host: 'test',
    pid: process.pid,
  });
}

export async function publishTasks(topic: string, tasks: TaskMessage[]): Promise<void> {
  await produce(
    topic,
    tasks.map((t) => taskRecord(topic, t)),
  );
}

/** Status events whose taskId starts with the prefix (tests use a random prefix). */
export function eventsOf(reader: TopicReader, prefix: string): StatusEvent[] {
  return reader.records.flatMap((r) =>
    r.topic === EVENTS && r.value !== null
      ? parseStatusEvents(Buffer.from(r.value)).filter((e) => e.taskId.startsWith(prefix))
      : [],
  );
}

/** How many events of a status each taskId has. */
export function countBy(events: StatusEvent[], status: StatusEvent['status']): Map<string, number> {
  const m = new Map<string, number>();
  for (const e of events) if (e.status === status) m.set(e.taskId, (m.get(e.taskId) ?? 0) + 1);
  return m;
}

/** A schedule file (the old tool's format) with one entry per `[Id, Cron]`, in a fresh temp dir; its path. */
export async function scheduleFile(
  topic: string,
  entries: Array<[id: string, cron: string]>,
  processor = 'NoopProcessor',
): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'tm-schedule-')), 'schedule.json');
  const json = entries.map(([Id, Cron]) => ({
    Id,
    Cron,
    Topic: topic,
    TaskMessageTemplate: { TaskProcessorName: processor },
  }));
  await writeFile(file, JSON.stringify(json));
  return file;
}

/** A taskconsumer of `topic` in `group` with the processors of test/fixtures/test-processors.js loaded (and `flags`). */
export function fixtureConsumer(topic: string, group = uniqueName('g'), ...flags: string[]): RunningCli {
  return startCli('taskconsumer', [
    '-b',
    brokers(),
    '-t',
    topic,
    '-g',
    group,
    '--processors',
    'test/fixtures/test-processors.js',
    ...flags,
  ]);
}
