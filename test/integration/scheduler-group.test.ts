import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokers, createTopics, deleteTopics, produce, TopicReader, uniqueName } from './helpers/kafka.js';
import { killAll, startCli } from './helpers/processes.js';
import type { RunningCli } from './helpers/processes.js';
import { waitFor } from './helpers/wait-for.js';
import { SCHEDULER_STATE_TOPIC } from '../../src/shared/messages.js';
import type { TaskMessage } from '../../src/shared/messages.js';

interface Entry {
  Id: string;
  Cron: string;
  Topic: string;
  Misfire?: string;
  TaskMessageTemplate: { TaskProcessorName: string };
}

async function scheduleFile(entries: Entry[]): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'tm-group-')), 'schedule.json');
  await writeFile(file, JSON.stringify(entries));
  return file;
}

const iso = (ms: number) => new Date(ms).toISOString();
const second = (ms: number) => Math.floor(ms / 1000) * 1000;

describe('several taskschedulers in one group', () => {
  let topic: string;
  let group: string;
  let reader: TopicReader;

  beforeEach(async () => {
    topic = uniqueName('tasks');
    group = uniqueName('taskscheduler');
    await createTopics([topic]);
    reader = await new TopicReader([topic]).start();
  });

  afterEach(async () => {
    await killAll();
    await reader.stop();
    await deleteTopics([topic]);
  });

  const entries = (n: number, misfire?: (i: number) => string): Entry[] =>
    Array.from({ length: n }, (_, i) => ({
      Id: `e${i}`,
      Cron: '* * * * * *',
      Topic: topic,
      ...(misfire ? { Misfire: misfire(i) } : {}),
      TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor' },
    }));
  const scheduler = (file: string): RunningCli =>
    startCli('taskscheduler', ['-b', brokers(), '-s', file, '--group', group]);
  const tasks = () => reader.values<TaskMessage>(topic);
  const firedBy = (pid: number) => tasks().filter((t) => t.scheduler.pid === pid).length;
  /** True when, in the last full second (300 ms ago at least), each pid fired and all 40 entries fired once. */
  const settledSecond = (...pids: number[]): boolean => {
    const last = second(Date.now() - 300) - 1000;
    const inLast = tasks().filter((t) => Date.parse(t.scheduledFor) === last);
    return (
      pids.every((p) => inLast.some((t) => t.scheduler.pid === p)) &&
      new Set(inLast.map((t) => t.taskId)).size === 40
    );
  };
  const entriesFiredIn = (pid: number, at: number): Set<string> =>
    new Set(
      tasks()
        .filter((t) => t.scheduler.pid === pid && Date.parse(t.scheduledFor) === at)
        .map((t) => t.scheduleId),
    );
  /**
   * Starts two instances, waits until they have split the entries, sends `signal` to the first and waits until
   * the second fires one of the first's entries. `before` is the last full second before the signal.
   */
  const splitThenSignal = async (file: string, signal: NodeJS.Signals) => {
    const a = scheduler(file);
    const b = scheduler(file);
    await waitFor(() => firedBy(a.pid) > 0 && firedBy(b.pid) > 0, { timeoutMs: 60_000, what: 'both firing' });
    await waitFor(() => settledSecond(a.pid, b.pid), { timeoutMs: 30_000, what: 'a settled split' });
    const before = second(Date.now()) - 1000;
    const aEntries = entriesFiredIn(a.pid, before);
    a.signal(signal);
    const at = Date.now();
    const takenOver = () =>
      tasks().some(
        (t) => t.scheduler.pid === b.pid && aEntries.has(t.scheduleId) && Date.parse(t.firedAt) > at,
      );
    await waitFor(takenOver, { timeoutMs: 60_000, what: "b to take over a's entries" });
    return { a, b, aEntries, before, at };
  };
  const duplicates = () => {
    const seen = new Map<string, number>();
    for (const t of tasks()) seen.set(t.taskId, (seen.get(t.taskId) ?? 0) + 1);
    return [...seen].filter(([, n]) => n > 1);
  };

  describe('when three instances run a file of 300 entries firing every second', () => {
    it('should publish every (entry, second) exactly once, each instance firing some', async () => {
      const file = await scheduleFile(entries(300));
      const s = [scheduler(file), scheduler(file), scheduler(file)];
      await waitFor(() => s.every((x) => firedBy(x.pid) > 0), {
        timeoutMs: 60_000,
        what: 'all three firing',
      });
      const from = second(Date.now()) + 1000;
      await waitFor(() => Date.now() >= from + 30_000, { timeoutMs: 40_000, intervalMs: 200 });
      const to = second(Date.now()) - 1000;
      for (const x of s) x.signal('SIGTERM');
      for (const x of s) expect((await x.exited).code).toBe(0);
      await reader.caughtUp(topic);

      expect(duplicates()).toEqual([]);
      const ids = new Set(tasks().map((t) => t.taskId));
      const missing: string[] = [];
      for (let t = from; t <= to; t += 1000)
        for (let i = 0; i < 300; i++) if (!ids.has(`e${i}@${iso(t)}`)) missing.push(`e${i}@${iso(t)}`);
      expect(missing).toEqual([]);
      console.log(
        `3 schedulers, 300 entries, ${(to - from) / 1000 + 1} s: ${ids.size} tasks, fired by ${s.map((x) => firedBy(x.pid)).join(' / ')}`,
      );
    });
  });

  describe('when its state partition holds more than one fetch (1 MiB) of records', () => {
    it('should read it to the end, take it over and fire', async () => {
      // 12,000 state records of e0 (about 1.4 MiB) all land in e0's partition, as an active segment fills up
      // before compaction. Regression: the state reader never resolved its offsets, so it re-read the first
      // fetch forever and the takeover never finished.
      const old = Date.parse('2020-01-01T00:00:00Z');
      const filler = Array.from({ length: 12_000 }, (_, i) => ({
        key: `${group}/e0`,
        value: JSON.stringify({
          v: 1,
          lastFiredAt: iso(old + i * 1000),
          specHash: 'filler',
          updatedAt: iso(old + i * 1000),
        }),
      }));
      for (let i = 0; i < filler.length; i += 3000)
        await produce(SCHEDULER_STATE_TOPIC, filler.slice(i, i + 3000));
      const s = scheduler(await scheduleFile(entries(1, () => 'skip')));
      await waitFor(() => firedBy(s.pid) > 0, { timeoutMs: 60_000, what: 'e0 firing' });
    });
  });

  describe('when a second instance joins while the first is still reading its state', () => {
    it('should give up the partitions taken away and fire its share, not wait for them forever', async () => {
      // 150,000 state records of other entries (about 15 MiB over the 12 partitions) make the first instance's
      // takeover read last long enough for the second to join during it. Regression: the read of a partition
      // taken away never finished, and every later assignment of that instance waited behind it.
      const filler = Array.from({ length: 150_000 }, (_, i) => ({
        key: `${group}/filler-${i}`,
        value: JSON.stringify({
          v: 1,
          lastFiredAt: iso(0),
          specHash: 'filler'.padEnd(60, '-'),
          updatedAt: iso(0),
        }),
      }));
      for (let i = 0; i < filler.length; i += 10_000)
        await produce(SCHEDULER_STATE_TOPIC, filler.slice(i, i + 10_000));
      const file = await scheduleFile(entries(40));
      const a = scheduler(file);
      await a.waitForOutput(/scheduler joined group/);
      const b = scheduler(file);
      await waitFor(() => settledSecond(a.pid, b.pid), {
        timeoutMs: 60_000,
        what: `both instances firing all 40 entries\n--- a ---\n${a.output.slice(-1500)}`,
      });
    });
  });

  describe('when the owner of some entries is killed with SIGKILL', () => {
    it('should hand its entries over and fire the missed times per Misfire, none twice', async () => {
      const file = await scheduleFile(entries(40, (i) => (i % 2 === 0 ? 'fire-all' : 'skip')));
      const { a, b, aEntries, before, at: killedAt } = await splitThenSignal(file, 'SIGKILL');
      const takeover =
        Math.min(
          ...tasks()
            .filter(
              (t) =>
                t.scheduler.pid === b.pid && aEntries.has(t.scheduleId) && Date.parse(t.firedAt) > killedAt,
            )
            .map((t) => Date.parse(t.firedAt)),
        ) - killedAt;
      await waitFor(() => Date.now() >= killedAt + takeover + 3000, { timeoutMs: 30_000, intervalMs: 200 });
      const after = second(Date.now()) - 1000;
      b.signal('SIGTERM');
      expect((await b.exited).code).toBe(0);
      await reader.caughtUp(topic);

      expect(duplicates()).toEqual([]);
      const ids = new Set(tasks().map((t) => t.taskId));
      let skipped = 0;
      for (const id of aEntries) {
        const i = Number(id.slice(1));
        for (let t = before; t <= after; t += 1000) {
          const has = ids.has(`${id}@${iso(t)}`);
          if (i % 2 === 0 && !has) {
            const around = tasks().filter(
              (x) => x.scheduleId === id && Math.abs(Date.parse(x.scheduledFor) - t) <= 3000,
            );
            console.log(
              `missing ${id}@${iso(t)}; before=${iso(before)} killedAt=${iso(killedAt)}; around: ${around.map((x) => `${x.scheduledFor}/${x.scheduler.pid}/${x.firedAt}`).join(' ')} a=${a.pid} b=${b.pid}\n${b.output
                .split('\n')
                .filter((l) => /owning|missed|fenced|WARN|ERROR/.test(l))
                .join('\n')}`,
            );
          }
          if (i % 2 === 0) expect(has, `fire-all ${id}@${iso(t)}`).toBe(true);
          else if (!has) skipped++;
        }
      }
      console.log(
        `scheduler kill -9: takeover after ${takeover} ms; ${aEntries.size} entries moved; ${skipped} fire times skipped by 'skip' entries`,
      );
      expect(skipped).toBeGreaterThan(0);
    });
  });

  describe('when the whole group is down for 2 minutes and restarted', () => {
    it('should fire fire-once entries once for the latest missed time, skip none, fire-all each in order', async () => {
      const every10 = (id: string, misfire: string): Entry => ({
        Id: id,
        Cron: '*/10 * * * * *',
        Topic: topic,
        Misfire: misfire,
        TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor' },
      });
      const file = await scheduleFile([
        every10('once', 'fire-once'),
        every10('skip', 'skip'),
        every10('all', 'fire-all'),
      ]);
      const first = scheduler(file);
      await waitFor(() => ['once', 'skip', 'all'].every((id) => tasks().some((t) => t.scheduleId === id)), {
        timeoutMs: 60_000,
        what: 'all three fired once',
      });
      first.signal('SIGTERM');
      expect((await first.exited).code).toBe(0);
      await reader.caughtUp(topic);
      const downFrom = Date.now();
      const lastBefore = (id: string) =>
        Math.max(
          ...tasks()
            .filter((t) => t.scheduleId === id)
            .map((t) => Date.parse(t.scheduledFor)),
        );
      const last = { once: lastBefore('once'), skip: lastBefore('skip'), all: lastBefore('all') };
      await waitFor(() => Date.now() >= downFrom + 120_000, {
        timeoutMs: 130_000,
        intervalMs: 500,
        what: '2 minutes down',
      });
      const restartedAt = Date.now();
      const second = scheduler(file);
      await waitFor(
        () => tasks().some((t) => t.scheduleId === 'all' && Date.parse(t.firedAt) > restartedAt),
        {
          timeoutMs: 60_000,
          what: 'the restarted group to fire',
        },
      );
      await waitFor(() => Date.now() >= restartedAt + 12_000, { timeoutMs: 30_000, intervalMs: 200 });
      second.signal('SIGTERM');
      expect((await second.exited).code).toBe(0);
      await reader.caughtUp(topic);

      expect(duplicates()).toEqual([]);
      const missedTimes = (id: keyof typeof last) => {
        const out: number[] = [];
        for (let t = last[id] + 10_000; t <= restartedAt; t += 10_000) out.push(t);
        return out;
      };
      const firedLate = (id: string) =>
        tasks()
          .filter(
            (t) =>
              t.scheduleId === id &&
              Date.parse(t.scheduledFor) > last[id as keyof typeof last] &&
              Date.parse(t.scheduledFor) <= restartedAt,
          )
          .map((t) => Date.parse(t.scheduledFor));
      expect(firedLate('all')).toEqual(missedTimes('all'));
      expect(firedLate('once')).toEqual(missedTimes('once').slice(-1));
      expect(firedLate('skip')).toEqual([]);
      console.log(
        `group down 2 min: fire-all fired ${firedLate('all').length} missed times, fire-once 1, skip 0`,
      );
    }, 240_000);
  });

  describe('when an owner is paused (SIGSTOP) past the session timeout and resumed', () => {
    it('should be fenced: it publishes nothing after the takeover, and no taskId appears twice', async () => {
      const file = await scheduleFile(entries(40));
      const { a, b, aEntries, at: stoppedAt } = await splitThenSignal(file, 'SIGSTOP');
      a.signal('SIGCONT');
      const resumedAt = Date.now();
      await waitFor(() => Date.now() >= resumedAt + 5000, { timeoutMs: 30_000, intervalMs: 200 });
      for (const x of [a, b]) x.signal('SIGTERM');
      await Promise.all([a.exited, b.exited]);
      await reader.caughtUp(topic);

      expect(duplicates()).toEqual([]);
      const zombie = tasks().filter(
        (t) =>
          t.scheduler.pid === a.pid &&
          aEntries.has(t.scheduleId) &&
          Date.parse(t.scheduledFor) > stoppedAt + 1000,
      );
      // After SIGCONT it may own partitions again through a fresh rebalance (new fence, fresh state): only fires
      // scheduled after it rejoined may come from it.
      expect(zombie.filter((t) => Date.parse(t.scheduledFor) < resumedAt)).toEqual([]);
      expect(a.output).toMatch(/fenced by a newer owner|owning state partitions/);
    });
  });
});
