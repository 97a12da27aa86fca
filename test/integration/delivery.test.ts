import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokers, createTopics, deleteTopics, TopicReader, uniqueName } from './helpers/kafka.js';
import type { ReadRecord } from './helpers/kafka.js';
import { killAll, ROOT, runCli, startCli } from './helpers/processes.js';
import type { RunningCli } from './helpers/processes.js';
import { countBy, EVENTS, eventsOf, publishTasks, taskMessage } from './helpers/tasks.js';
import { waitFor } from '../kit/wait.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

const FIXTURES = resolve(ROOT, 'test/fixtures/test-processors.js');

describe('delivery guarantees under faults', () => {
  let topic: string;
  let group: string;
  let prefix: string;
  let reader: TopicReader;

  async function setup(partitions = 12): Promise<void> {
    topic = uniqueName('tasks');
    group = uniqueName('group');
    prefix = `${uniqueName('d')}-`;
    await createTopics([topic], partitions);
    reader = await new TopicReader([topic, `${topic}.dlq`, { topic: EVENTS, fromEnd: true }]).start();
  }

  afterEach(async () => {
    await killAll();
    await reader.stop();
    await deleteTopics([topic]);
  });

  // EXECUTING as each attempt starts (`--executing-after-ms 0`): this test counts starts by it.
  const consumer = (...extra: string[]): RunningCli =>
    startCli('taskconsumer', [
      ...['-b', brokers(), '-t', topic, '-g', group, '--processors', FIXTURES],
      ...['--executing-after-ms', '0', ...extra],
    ]);
  const dlq = (): ReadRecord[] => reader.records.filter((r) => r.topic === `${topic}.dlq`);
  const finished = () => countBy(eventsOf(reader, prefix), 'FINISHED');

  describe('when one of two consumers is killed with SIGKILL while 2,000 tasks flow', () => {
    beforeEach(() => setup());

    it('should finish every task, re-running only the ones in flight at the kill', async () => {
      const tasks: TaskMessage[] = [];
      for (let i = 0; i < 2000; i++) {
        tasks.push(
          taskMessage(
            `${prefix}${i % 100}`,
            'SleepProcessor',
            { ms: Math.floor(Math.random() * 20) },
            Date.UTC(2026, 0, 1) + i * 1000,
          ),
        );
      }
      const c1 = consumer('-c', '10');
      const c2 = consumer('-c', '10');
      await publishTasks(topic, tasks);
      const byPid = (pid: number) =>
        eventsOf(reader, prefix).filter((e) => e.status === 'FINISHED' && e.by.pid === pid).length;
      await waitFor(() => byPid(c1.pid) >= 300 && byPid(c2.pid) >= 300, {
        timeoutMs: 60_000,
        what: 'both consumers busy',
      });
      c1.signal('SIGKILL');
      await c1.exited;
      const finishedBeforeKill = byPid(c1.pid);

      await waitFor(() => finished().size === 2000, { timeoutMs: 120_000, what: 'all 2,000 tasks FINISHED' });
      // Everything the killed consumer published is in the events topic by now (its producer acked it).
      const events = eventsOf(reader, prefix);
      const startedByC1 = new Set(
        events.filter((e) => e.status === 'EXECUTING' && e.by.pid === c1.pid).map((e) => e.taskId),
      );
      const finishedByC1 = new Set(
        events.filter((e) => e.status === 'FINISHED' && e.by.pid === c1.pid).map((e) => e.taskId),
      );
      const inFlightAtKill = [...startedByC1].filter((id) => !finishedByC1.has(id));
      const rerun = [...finished().entries()].filter(([, n]) => n > 1).map(([id]) => id);
      console.log(
        `kill -9 test: ${finishedBeforeKill} tasks finished by the killed consumer, ${inFlightAtKill.length} in flight at ` +
          `the kill, ${rerun.length} finished twice (finished, not yet committed), 0 lost`,
      );
      // In flight at the kill: re-run by the survivor, once.
      for (const id of inFlightAtKill) expect(finished().get(id)).toBe(1);
      // Finished twice: only tasks the killed consumer had finished but not yet committed (the FINISHED-ack and
      // offset-commit round trips, ~50-100 ms of throughput); never one it had committed.
      // Finished twice: tasks the killed consumer had finished but not yet committed (the FINISHED-ack and
      // offset-commit round trips, ~50-100 ms of throughput), and rarely a task the survivor finished just before
      // the rebalance that follows the kill, when that commit was refused. Bounded either way, never lost.
      const notByC1 = rerun.filter((id) => !finishedByC1.has(id));
      console.log(
        `kill -9 test: of the ${rerun.length} finished twice, ${notByC1.length} were not the killed consumer's`,
      );
      expect(rerun.length).toBeLessThanOrEqual(60);
      expect(dlq()).toHaveLength(0);
    });
  });

  describe('when a task waits for its retry', () => {
    beforeEach(() => setup(1));

    it('should not delay a task of another key in the same partition', async () => {
      const failing = taskMessage(`${prefix}slow`, 'FlakyProcessor');
      const other = taskMessage(`${prefix}fast`, 'NoopProcessor');
      consumer('--retry-base-ms', '3000', '--max-attempts', '3');
      const sent = Date.now();
      await publishTasks(topic, [failing, other]);
      await waitFor(() => finished().has(failing.taskId), {
        timeoutMs: 60_000,
        what: 'the flaky task to finish',
      });
      const events = eventsOf(reader, prefix);
      const otherDone = events.find((e) => e.taskId === other.taskId && e.status === 'FINISHED');
      const failingDone = events.find((e) => e.taskId === failing.taskId && e.status === 'FINISHED');
      expect(Date.parse(otherDone?.at ?? '')).toBeLessThan(Date.parse(failingDone?.at ?? ''));
      expect(Date.parse(otherDone?.at ?? '') - sent).toBeLessThan(2000);
      expect(failingDone?.attempt).toBe(3);
    });
  });

  describe('when a processor never settles', () => {
    beforeEach(() => setup(1));

    it('should time out each attempt, dead-letter the task, and keep going', async () => {
      const hang = taskMessage(`${prefix}hang`, 'HangProcessor');
      const next = taskMessage(`${prefix}next`, 'NoopProcessor');
      consumer('--task-timeout-ms', '300', '--max-attempts', '2', '--retry-base-ms', '10');
      await publishTasks(topic, [hang, next]);
      await waitFor(() => dlq().length === 1 && finished().has(next.taskId), {
        timeoutMs: 30_000,
        what: 'DLQ + next',
      });
      expect(dlq()[0]?.headers['dlq-reason']).toBe('attempts-exhausted');
      expect(dlq()[0]?.headers['dlq-error']).toMatch(/timed out after 300 ms/);
    });
  });

  describe('when a dead-lettered task is replayed', () => {
    beforeEach(() => setup());

    it('should list it with its reason, bring it back, and it should finish', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'tm-replay-'));
      const okFile = join(dir, 'ok');
      const task = taskMessage(`${prefix}r`, 'OkWhenFileExistsProcessor', { okFile });
      consumer();
      await publishTasks(topic, [task]);
      await waitFor(() => dlq().length === 1, { timeoutMs: 30_000, what: 'the task in the DLQ' });

      const list = await runCli('taskconsumer', ['dlq', 'list', '-b', brokers(), '-t', topic]);
      expect(list.code).toBe(0);
      expect(list.stdout).toContain(task.taskId);
      expect(list.stdout).toContain('non-retriable');
      expect(list.stdout).toContain(`${topic}.dlq: 1 waiting, 0 replayed`);

      await writeFile(okFile, 'ok');
      const replay = await runCli('taskconsumer', [
        'dlq',
        'replay',
        '-b',
        brokers(),
        '-t',
        topic,
        '--task-id',
        task.taskId,
      ]);
      expect(replay.code).toBe(0);
      expect(replay.stdout).toContain('1 task(s) replayed');
      await waitFor(() => finished().has(task.taskId), {
        timeoutMs: 30_000,
        what: 'the replayed task to finish',
      });
      expect(eventsOf(reader, task.taskId).map((e) => e.status)).toContain('REPLAYED');

      const after = await runCli('taskconsumer', ['dlq', 'list', '-b', brokers(), '-t', topic]);
      expect(after.stdout).toContain(`${topic}.dlq: 0 waiting, 1 replayed`);
      const again = await runCli('taskconsumer', ['dlq', 'replay', '-b', brokers(), '-t', topic, '--all']);
      expect(again.stdout).toContain('0 task(s) replayed');
    });
  });

  describe('when consumers join while tasks run (rebalances)', () => {
    beforeEach(() => setup());

    it('should process no task twice', async () => {
      const tasks = Array.from({ length: 400 }, (_, i) =>
        taskMessage(`${prefix}${i % 40}`, 'SleepProcessor', { ms: 200 }, Date.UTC(2026, 0, 1) + i * 1000),
      );
      const cs = [consumer('-c', '8', '-l', 'debug')];
      await publishTasks(topic, tasks);
      await waitFor(() => finished().size >= 50, { timeoutMs: 30_000, what: '50 finished' });
      cs.push(consumer('-c', '8', '-l', 'debug'));
      await waitFor(() => finished().size >= 150, { timeoutMs: 30_000, what: '150 finished' });
      cs.push(consumer('-c', '8', '-l', 'debug'));
      await waitFor(() => finished().size === 400, { timeoutMs: 60_000, what: 'all finished' });
      const executing = countBy(eventsOf(reader, prefix), 'EXECUTING');
      const twice = [...executing.entries()].filter(([, n]) => n > 1);
      if (twice.length > 0 || process.env.DEBUG_DELIVERY) {
        const detail = twice.map(([id]) =>
          eventsOf(reader, id)
            .map((e) => `${e.status}@${e.by.pid}/${e.at}/${e.source?.partition}@${e.source?.offset}`)
            .join(' '),
        );
        const logs = cs.map((c) =>
          c.output
            .split('\n')
            .filter((l) => /WARN|ERROR|joined|rebalanc|commit/i.test(l) && !/kafkajs Connection/.test(l))
            .map((l) => `[${c.pid}] ${l.slice(0, 260)}`)
            .join('\n'),
        );
        console.log(`run twice:\n${detail.join('\n')}\n${logs.join('\n')}`);
      }
      expect(twice).toEqual([]);
      // The later joiners may find little left to do; at least two instances shared the work.
      const pids = new Set(
        eventsOf(reader, prefix)
          .filter((e) => e.status === 'FINISHED')
          .map((e) => e.by.pid),
      );
      expect(pids.size).toBeGreaterThanOrEqual(2);
    });
  });
});
