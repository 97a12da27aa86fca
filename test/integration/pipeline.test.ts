import { readFile, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokers, createTopics, deleteTopics, TopicReader, uniqueName } from './helpers/kafka.js';
import { killAll, ROOT, startCli } from './helpers/processes.js';
import type { RunningCli } from './helpers/processes.js';
import { countBy, EVENTS, eventsOf, publishTasks, taskMessage } from './helpers/tasks.js';
import { waitFor } from '../kit/wait.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

/**
 * The old tool's file with its Ids prefixed and its topic renamed, so parallel runs do not see each other;
 * `copies` > 1 repeats its entries under more Ids, so keys spread over every consumer's partitions.
 */
async function oldToolFile(prefix: string, topic: string, copies = 1): Promise<string> {
  const original = JSON.parse(await readFile(join(ROOT, 'config/taskscheduler.json'), 'utf8')) as Array<{
    Id: string;
    Topic: string;
  }>;
  const entries = Array.from({ length: copies }, (_, c) =>
    original.map((e) => ({ ...e, Id: c === 0 ? e.Id : `${e.Id}-${c}` })),
  ).flat();
  for (const e of entries) {
    e.Id = `${prefix}${e.Id}`;
    e.Topic = topic;
  }
  const dir = await mkdtemp(join(tmpdir(), 'tm-'));
  const file = join(dir, 'taskscheduler.json');
  await writeFile(file, JSON.stringify(entries, null, 2));
  return file;
}

describe('the pipeline: taskscheduler → Kafka → taskconsumer group', () => {
  let topic: string;
  let group: string;
  let prefix: string;
  let reader: TopicReader;

  beforeEach(async () => {
    topic = uniqueName('tasks');
    group = uniqueName('group');
    prefix = `${uniqueName('s')}-`;
    await createTopics([topic]);
    reader = await new TopicReader([topic, { topic: EVENTS, fromEnd: true }]).start();
  });

  afterEach(async () => {
    await killAll();
    await reader.stop();
    await deleteTopics([topic]);
  });

  // EXECUTING as each attempt starts (`--executing-after-ms 0`): this test counts starts by it.
  const consumer = (...extra: string[]): RunningCli =>
    startCli('taskconsumer', [
      ...[`-brokers=${brokers()}`, `-topic=${topic}`, '-g', group, '-l=INFO'],
      ...['--executing-after-ms', '0', ...extra],
    ]);

  describe("when the old tool's file runs with the old Go-style flags", () => {
    it('should publish 4 tasks a second with unique taskIds, each processed exactly once by two consumers', async () => {
      const file = await oldToolFile(prefix, topic);
      const c1 = consumer();
      const c2 = consumer();
      const scheduler = startCli('taskscheduler', [`-brokers=${brokers()}`, `-schedule=${file}`, '-l=DEBUG']);
      await waitFor(() => reader.values<TaskMessage>(topic).length >= 24, {
        timeoutMs: 30_000,
        what: '24 tasks',
      });
      scheduler.signal('SIGINT');
      expect(await scheduler.exited).toEqual({ code: 0, signal: null });
      await reader.caughtUp(topic);

      const tasks = reader.values<TaskMessage>(topic);
      const ids = tasks.map((t) => t.taskId);
      expect(new Set(ids).size).toBe(ids.length);
      // Four entries, every second: each second has all four, from the first second every entry had started on.
      // (Entries are armed as their state partitions are taken over at start-up, a few ms apart: one never fired
      // before starts from then, so the first second may hold only some of them; seen once in CI.)
      const starts = [...new Set(tasks.map((t) => t.scheduleId))].map((id) =>
        Math.min(...tasks.filter((t) => t.scheduleId === id).map((t) => Date.parse(t.scheduledFor))),
      );
      expect(starts).toHaveLength(4);
      const bySecond = new Map<string, number>();
      for (const t of tasks)
        if (Date.parse(t.scheduledFor) >= Math.max(...starts))
          bySecond.set(t.scheduledFor, (bySecond.get(t.scheduledFor) ?? 0) + 1);
      expect([...bySecond].filter(([, n]) => n !== 4)).toEqual([]);
      expect(bySecond.size).toBeGreaterThanOrEqual(5);
      for (const t of tasks) {
        expect(Date.parse(t.firedAt)).toBeGreaterThanOrEqual(Date.parse(t.scheduledFor));
        expect(t.taskId).toBe(`${t.scheduleId}@${t.scheduledFor}`);
      }
      const withPayload = tasks.find((t) => t.scheduleId === `${prefix}1`);
      expect(withPayload?.payload).toEqual(['Ireland', 'Germany', 'Italy']);

      await waitFor(() => countBy(eventsOf(reader, prefix), 'FINISHED').size === ids.length, {
        timeoutMs: 30_000,
        what: 'every task FINISHED',
      });
      const events = eventsOf(reader, prefix);
      const finished = countBy(events, 'FINISHED');
      const executing = countBy(events, 'EXECUTING');
      for (const id of ids) {
        expect(finished.get(id)).toBe(1);
        expect(executing.get(id)).toBe(1);
      }
      expect(countBy(events, 'SCHEDULED').size).toBe(ids.length);
      // Four keys over 12 partitions may all land on one member's half: the two share them, whoever gets which.
      const pids = new Set(events.filter((e) => e.status === 'FINISHED').map((e) => e.by.pid));
      for (const pid of pids) expect([c1.pid, c2.pid]).toContain(pid);
    });
  });

  describe('when the schedulers of one group write SCHEDULED events in both forms (a rolling upgrade)', () => {
    it('should write each fire one SCHEDULED event, read the same whichever form carried it', async () => {
      const file = await oldToolFile(prefix, topic, 6);
      const args = [`-brokers=${brokers()}`, `-schedule=${file}`];
      // One instance as earlier releases write (one record per fire), one as this release does (batches).
      const older = startCli('taskscheduler', [...args, '--scheduled-events', 'per-task']);
      const newer = startCli('taskscheduler', args);
      const forms = () => {
        const mine = reader.records.filter((r) => r.topic === EVENTS && r.value?.includes(prefix));
        return {
          perTask: mine.filter((r) => r.headers['task-id']?.startsWith(prefix)).length,
          batched: mine.filter((r) => r.headers['scheduled-tasks'] !== undefined).length,
        };
      };
      await waitFor(() => forms().perTask > 0 && forms().batched > 0, {
        timeoutMs: 45_000,
        what: () => `both forms of SCHEDULED (${JSON.stringify(forms())})\n${older.output}\n${newer.output}`,
      });
      for (const s of [older, newer]) s.signal('SIGINT');
      expect(await older.exited).toEqual({ code: 0, signal: null });
      expect(await newer.exited).toEqual({ code: 0, signal: null });
      await reader.caughtUp(topic);
      await reader.caughtUp(EVENTS);
      const ids = reader.values<TaskMessage>(topic).map((t) => t.taskId);
      expect(new Set(ids).size).toBe(ids.length);
      const scheduled = countBy(eventsOf(reader, prefix), 'SCHEDULED');
      expect([...scheduled.keys()].sort()).toEqual([...ids].sort());
      expect([...scheduled.values()].every((n) => n === 1)).toBe(true);
      const pids = new Set(eventsOf(reader, prefix).map((e) => e.by.pid));
      expect([...pids].sort()).toEqual([older.pid, newer.pid].sort());
    });
  });

  describe('when a consumer joins and another leaves by SIGINT while tasks flow', () => {
    it('should lose no task and process none twice, each instance doing some', async () => {
      const file = await oldToolFile(prefix, topic, 6);
      const c1 = consumer();
      const c2 = consumer();
      const scheduler = startCli('taskscheduler', ['-b', brokers(), '-s', file]);
      const finishedBy = (pid: number) =>
        eventsOf(reader, prefix).filter((e) => e.status === 'FINISHED' && e.by.pid === pid).length;
      await waitFor(() => finishedBy(c1.pid) > 0 && finishedBy(c2.pid) > 0, {
        timeoutMs: 30_000,
        what: 'c1 and c2 busy',
      });
      const c3 = consumer();
      await waitFor(() => finishedBy(c3.pid) > 0, { timeoutMs: 30_000, what: 'c3 to take its share' });
      c1.signal('SIGINT');
      expect(await c1.exited).toEqual({ code: 0, signal: null });
      const afterLeave = reader.values<TaskMessage>(topic).length;
      await waitFor(() => reader.values<TaskMessage>(topic).length >= afterLeave + 72, { timeoutMs: 30_000 });
      scheduler.signal('SIGTERM');
      expect((await scheduler.exited).code).toBe(0);
      await reader.caughtUp(topic);

      const ids = reader.values<TaskMessage>(topic).map((t) => t.taskId);
      await waitFor(() => countBy(eventsOf(reader, prefix), 'FINISHED').size === ids.length, {
        timeoutMs: 30_000,
        what: 'every task FINISHED',
      });
      const finished = countBy(eventsOf(reader, prefix), 'FINISHED');
      const executing = countBy(eventsOf(reader, prefix), 'EXECUTING');
      for (const id of ids) {
        expect(finished.get(id), id).toBe(1);
        expect(executing.get(id), id).toBe(1);
      }
      for (const c of [c1, c2, c3]) expect(finishedBy(c.pid)).toBeGreaterThan(0);
    });
  });

  describe('when SIGINT arrives during a long task', () => {
    it('should finish it, commit it, exit 0, and the next instance should not run it again', async () => {
      const long = taskMessage(`${prefix}long`, 'SleepProcessor', { ms: 3000 });
      const c1 = consumer('--drain-timeout-ms', '20000');
      await publishTasks(topic, [long]);
      await waitFor(() => eventsOf(reader, long.taskId).some((e) => e.status === 'EXECUTING'), {
        timeoutMs: 30_000,
        what: 'the long task to start',
      });
      c1.signal('SIGINT');
      expect(await c1.exited).toEqual({ code: 0, signal: null });
      const done = eventsOf(reader, long.taskId).filter((e: StatusEvent) => e.status === 'FINISHED');
      await waitFor(() => eventsOf(reader, long.taskId).some((e) => e.status === 'FINISHED'), {
        timeoutMs: 10_000,
      });
      expect(done.length + 1).toBeGreaterThan(0);
      expect(
        eventsOf(reader, long.taskId).find((e) => e.status === 'FINISHED')?.durationMs,
      ).toBeGreaterThanOrEqual(2900);

      // A later instance of the group gets a marker task, proving it is consuming, and never the long one.
      const marker = taskMessage(`${prefix}marker`, 'NoopProcessor');
      const c2 = consumer();
      await publishTasks(topic, [marker]);
      await waitFor(() => eventsOf(reader, marker.taskId).some((e) => e.status === 'FINISHED'), {
        timeoutMs: 30_000,
        what: 'the marker task',
      });
      expect(eventsOf(reader, long.taskId).filter((e) => e.status === 'EXECUTING')).toHaveLength(1);
      expect(c2.alive).toBe(true);
    });
  });
});
