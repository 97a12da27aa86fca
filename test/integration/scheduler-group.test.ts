import { describe, expect, it } from 'vitest';
import { groupScheduleFile, iso, useSchedulerGroup } from './helpers/scheduler-group.js';
import type { Entry } from './helpers/scheduler-group.js';
import { brokers, uniqueName } from './helpers/kafka.js';
import { startCli } from './helpers/processes.js';
import { waitFor } from '../kit/wait.js';

// The long and large cases of a scheduler group (three instances over 30 s, state partitions of many records)
// are in test/soak/scheduler-group-volume.test.ts.
describe('several taskschedulers in one group', () => {
  const sg = useSchedulerGroup();

  describe('when the owner of some entries is killed with SIGKILL', () => {
    it('should hand its entries over and fire the missed times per Misfire, none twice', async () => {
      const file = await groupScheduleFile(sg.entries(40, (i) => (i % 2 === 0 ? 'fire-all' : 'skip')));
      const {
        a,
        b,
        aEntries,
        before,
        at: killedAt,
        takenOverAt,
      } = await sg.splitThenSignal(file, 40, 'SIGKILL');
      const takeover = takenOverAt - killedAt;
      // Caught up: b alone fires all 40 entries in a whole second after it took a's over (fire-all entries fire
      // their missed times first, in order).
      const after = await waitFor(
        () => {
          const s = sg.settledSecond(40, b.pid);
          return s !== undefined && s > killedAt + takeover ? s : undefined;
        },
        { timeoutMs: 30_000, what: 'b firing all 40 entries in one second' },
      );
      b.signal('SIGTERM');
      expect((await b.exited).code).toBe(0);
      await sg.reader().caughtUp(sg.topic);

      expect(sg.duplicates()).toEqual([]);
      const ids = new Set(sg.tasks().map((t) => t.taskId));
      let skipped = 0;
      const missing: string[] = [];
      for (const id of aEntries) {
        const i = Number(id.slice(1));
        for (let t = before; t <= after; t += 1000) {
          const has = ids.has(`${id}@${iso(t)}`);
          if (i % 2 === 0 && !has) missing.push(`${id}@${iso(t)}`);
          else if (!has) skipped++;
        }
      }
      expect(missing, `fire-all times missing (a=${a.pid} b=${b.pid}, killed ${iso(killedAt)})`).toEqual([]);
      console.log(
        `scheduler kill -9: takeover after ${takeover} ms; ${aEntries.size} entries moved; ${skipped} fire times skipped by 'skip' entries`,
      );
      expect(skipped).toBeGreaterThan(0);
    });
  });

  describe('when the whole group is down for 12 s and restarted', () => {
    it('should fire fire-once entries once for the latest missed time, skip none, fire-all each in order', async () => {
      const every2 = (id: string, misfire: string): Entry => ({
        Id: id,
        Cron: '*/2 * * * * *',
        Topic: sg.topic,
        Misfire: misfire,
        TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor' },
      });
      const file = await groupScheduleFile([
        every2('once', 'fire-once'),
        every2('skip', 'skip'),
        every2('all', 'fire-all'),
      ]);
      const ids = ['once', 'skip', 'all'];
      const firesOf = (id: string) =>
        sg
          .tasks()
          .filter((t) => t.scheduleId === id)
          .sort((x, y) => Date.parse(x.scheduledFor) - Date.parse(y.scheduledFor));
      // A witness in a group of its own keeps firing every 2 s through the outage: its fires tell when six
      // instants have passed with the group under test down.
      const witness = startCli('taskscheduler', [
        '-b',
        brokers(),
        '-s',
        await groupScheduleFile([every2('witness', 'skip')]),
        '--group',
        uniqueName('witness'),
      ]);
      const first = sg.scheduler(file);
      await waitFor(() => [...ids, 'witness'].every((id) => firesOf(id).length > 0), {
        timeoutMs: 60_000,
        what: 'all three fired once',
      });
      first.signal('SIGTERM');
      expect((await first.exited).code).toBe(0);
      await sg.reader().caughtUp(sg.topic);
      const lastBefore = new Map(ids.map((id) => [id, Date.parse(firesOf(id).at(-1)!.scheduledFor)]));
      // The outage under test: six instants of the 2 s entries pass with no instance of the group up.
      const downFrom = Math.max(...lastBefore.values());
      await waitFor(
        () => firesOf('witness').filter((t) => Date.parse(t.scheduledFor) > downFrom).length >= 6,
        {
          timeoutMs: 30_000,
          what: `six fires of the witness (pid ${witness.pid}) during the outage`,
        },
      );
      const restartedAt = Date.now();
      const second = sg.scheduler(file);
      // Caught up: every entry fired an instant well after the restart (missed times are fired first).
      await waitFor(
        () => ids.every((id) => firesOf(id).some((t) => Date.parse(t.scheduledFor) > restartedAt + 2000)),
        { timeoutMs: 60_000, what: 'the restarted group firing every entry' },
      );
      second.signal('SIGTERM');
      expect((await second.exited).code).toBe(0);
      await sg.reader().caughtUp(sg.topic);

      expect(sg.duplicates()).toEqual([]);
      /** Instants fired after the last one before the outage, in order. */
      const after = (id: string) =>
        firesOf(id)
          .map((t) => Date.parse(t.scheduledFor))
          .filter((t) => t > (lastBefore.get(id) ?? 0));
      /** The instants every 2 s from `from` on, as many as `n`. */
      const every2From = (from: number, n: number) =>
        Array.from({ length: n }, (_, i) => iso(from + 2000 * i));
      // fire-all: every instant since the last fire before the outage, in order, the missed ones included.
      const all = after('all');
      expect(all.map(iso)).toEqual(every2From((lastBefore.get('all') ?? 0) + 2000, all.length));
      const missed = all.filter((t) => t < restartedAt).length;
      expect(missed).toBeGreaterThanOrEqual(5);
      // fire-once: the latest missed instant only (none of the earlier ones), then every instant.
      const once = after('once');
      expect(once[0]).toBeGreaterThanOrEqual(restartedAt - 2000);
      expect(once.map(iso)).toEqual(every2From(once[0]!, once.length));
      // skip: no missed instant; the first fire is one after the restart, then every instant.
      const skip = after('skip');
      expect(skip[0]).toBeGreaterThan(restartedAt);
      expect(skip.map(iso)).toEqual(every2From(skip[0]!, skip.length));
      console.log(`group down 12 s: fire-all fired ${missed} missed times, fire-once 1, skip 0`);
    });
  });

  describe('when an owner is paused (SIGSTOP) past the session timeout and resumed', () => {
    it('should be fenced: it publishes nothing after the takeover, and no taskId appears twice', async () => {
      const file = await groupScheduleFile(sg.entries(40));
      const { a, b, aEntries, at: stoppedAt } = await sg.splitThenSignal(file, 40, 'SIGSTOP');
      const seen = a.output.length;
      a.signal('SIGCONT');
      const resumedAt = Date.now();
      // Back, it learns it lost its partitions: fenced, or a fresh rebalance gives it some again.
      await a.waitForOutput(/fenced by a newer owner|owning state partitions/, 30_000, seen);
      const noticedAt = Date.now();
      await waitFor(
        () => {
          const s = sg.settledSecond(40);
          return s !== undefined && s > noticedAt;
        },
        { timeoutMs: 30_000, what: 'all 40 entries firing in one second after a noticed' },
      );
      for (const x of [a, b]) x.signal('SIGTERM');
      await Promise.all([a.exited, b.exited]);
      await sg.reader().caughtUp(sg.topic);

      expect(sg.duplicates()).toEqual([]);
      const zombie = sg
        .tasks()
        .filter(
          (t) =>
            t.scheduler.pid === a.pid &&
            aEntries.has(t.scheduleId) &&
            Date.parse(t.scheduledFor) > stoppedAt + 1000,
        );
      // After SIGCONT it may own partitions again through a fresh rebalance (new fence, fresh state): only fires
      // scheduled after it rejoined may come from it.
      expect(zombie.filter((t) => Date.parse(t.scheduledFor) < resumedAt)).toEqual([]);
    });
  });
});
