import { describe, expect, it } from 'vitest';
import { produce } from '../integration/helpers/kafka.js';
import { useOwnBroker } from '../integration/helpers/own-broker.js';
import { groupScheduleFile, iso, second, useSchedulerGroup } from '../integration/helpers/scheduler-group.js';
import { waitFor } from '../kit/wait.js';
import { encodeState, SCHEDULER_STATE_TOPIC } from '../../src/shared/codecs/scheduler-state.js';

describe('a scheduler group at volume', () => {
  const sg = useSchedulerGroup();

  describe('when three instances run a file of 300 entries firing every second for 30 s', () => {
    it('should publish every (entry, second) exactly once, each instance firing some', async () => {
      const file = await groupScheduleFile(sg.entries(300));
      const s = [sg.scheduler(file), sg.scheduler(file), sg.scheduler(file)];
      await waitFor(() => s.every((x) => sg.firedBy(x.pid) > 0), {
        timeoutMs: 60_000,
        what: 'all three firing',
      });
      const from = second(Date.now()) + 1000;
      const to = from + 29_000;
      // The soak itself: 30 s of 300 fires a second from three instances, until the last second has all 300.
      await waitFor(() => sg.tasks().filter((t) => Date.parse(t.scheduledFor) === to).length >= 300, {
        timeoutMs: 60_000,
        what: `all 300 entries fired for ${iso(to)}`,
      });
      for (const x of s) x.signal('SIGTERM');
      for (const x of s) expect((await x.exited).code).toBe(0);
      await sg.reader().caughtUp(sg.topic);

      expect(sg.duplicates()).toEqual([]);
      const ids = new Set(sg.tasks().map((t) => t.taskId));
      const missing: string[] = [];
      for (let t = from; t <= to; t += 1000)
        for (let i = 0; i < 300; i++) if (!ids.has(`e${i}@${iso(t)}`)) missing.push(`e${i}@${iso(t)}`);
      expect(missing).toEqual([]);
      console.log(
        `3 schedulers, 300 entries, ${(to - from) / 1000 + 1} s: ${ids.size} tasks, fired by ${s.map((x) => sg.firedBy(x.pid)).join(' / ')}`,
      );
    });
  });
});

// These two fill the scheduler state topic with thousands of records that no other test should read again (each
// takeover reads its state partitions to the end): they run on a broker of their own, deleted afterwards.
describe('a scheduler group whose state topic is large', () => {
  const own = useOwnBroker();
  const sg = useSchedulerGroup(own);
  const fill = async (records: Array<{ key: string; value: string }>, batch: number) => {
    for (let i = 0; i < records.length; i += batch)
      await produce(SCHEDULER_STATE_TOPIC, records.slice(i, i + batch), own.kafka);
  };

  describe('when its state partition holds more than one fetch (1 MiB) of records', () => {
    it('should read it to the end, take it over and fire', async () => {
      // 12,000 state records of e0 (about 1.4 MiB) all land in e0's partition, as an active segment fills up
      // before compaction. Regression: the state reader never resolved its offsets, so it re-read the first
      // fetch forever and the takeover never finished.
      const old = Date.parse('2020-01-01T00:00:00Z');
      const filler = Array.from({ length: 12_000 }, (_, i) => ({
        key: `${sg.group}/e0`,
        value: encodeState({
          v: 1,
          lastFiredAt: iso(old + i * 1000),
          specHash: 'filler',
          updatedAt: iso(old + i * 1000),
        }),
      }));
      await fill(filler, 3000);
      const startedAt = Date.now();
      const s = sg.scheduler(await groupScheduleFile(sg.entries(1, () => 'skip')));
      const fired = await waitFor(() => sg.tasks().find((t) => t.scheduler.pid === s.pid), {
        timeoutMs: 60_000,
        what: 'e0 firing',
      });
      // Fired for now (Misfire skip), not for an instant of the 2020 state it read.
      expect(fired.scheduleId).toBe('e0');
      expect(Date.parse(fired.scheduledFor)).toBeGreaterThanOrEqual(second(startedAt));
    });
  });

  describe('when a second instance joins while the first is still reading its state', () => {
    it('should give up the partitions taken away and fire its share, not wait for them forever', async () => {
      // 150,000 state records of other entries (about 15 MiB over the 12 partitions) make the first instance's
      // takeover read last long enough for the second to join during it. Regression: the read of a partition
      // taken away never finished, and every later assignment of that instance waited behind it.
      const filler = Array.from({ length: 150_000 }, (_, i) => ({
        key: `${sg.group}/filler-${i}`,
        value: encodeState({
          v: 1,
          lastFiredAt: iso(0),
          specHash: 'filler'.padEnd(60, '-'),
          updatedAt: iso(0),
        }),
      }));
      await fill(filler, 10_000);
      const file = await groupScheduleFile(sg.entries(40));
      const a = sg.scheduler(file);
      await a.waitForOutput(/scheduler joined group/);
      const b = sg.scheduler(file);
      const settled = await waitFor(() => sg.settledSecond(40, a.pid, b.pid), {
        timeoutMs: 60_000,
        what: () => `both instances firing all 40 entries\n--- a ---\n${a.output.slice(-1500)}`,
      });
      // Each fired a share of that second, and no task was published twice on the way.
      const inSettled = sg.tasks().filter((t) => Date.parse(t.scheduledFor) === settled);
      expect(new Set(inSettled.map((t) => t.scheduler.pid))).toEqual(new Set([a.pid, b.pid]));
      expect(sg.duplicates()).toEqual([]);
    });
  });
});
