import { describe, expect, it } from 'vitest';
import { groupScheduleFile, iso, useSchedulerGroup } from './helpers/scheduler-group.js';
import { waitFor } from '../kit/wait.js';
import { jitterDelayMs } from '../../src/shared/schedule/jitter.js';

describe('jitter across a scheduler failover', () => {
  const sg = useSchedulerGroup();

  describe('when the owner of jittered entries is killed with SIGKILL', () => {
    it('should fire every instant once, at the same jittered time whichever instance fires it', async () => {
      // Every second with a jitter of 1 s: each fire is delayed by [0, 1000) ms, a hash of its taskId.
      const entries = sg.entries(20, () => 'fire-all').map((e) => ({ ...e, JitterSeconds: 1 }));
      const { b, aEntries, before, takenOverAt } = await sg.splitThenSignal(
        await groupScheduleFile(entries),
        20,
        'SIGKILL',
      );
      // An instant of a's entries whose delay had not passed at b's takeover must still fire (at its jittered
      // time), not be skipped: wait for a settled second after the takeover.
      const after = await waitFor(
        () => {
          const s = sg.settledSecond(20, b.pid);
          return s !== undefined && s > takenOverAt ? s : undefined;
        },
        { timeoutMs: 30_000, what: 'b firing all 20 entries in one second after its takeover' },
      );
      b.signal('SIGTERM');
      expect((await b.exited).code).toBe(0);
      await sg.reader().caughtUp(sg.topic);

      expect(sg.duplicates()).toEqual([]);
      const tasks = sg.tasks();
      // Each task: its taskId is the nominal instant's, and it was due at the delay of that taskId, fired no sooner.
      const wrong = tasks.filter(
        (t) =>
          t.taskId !== `${t.scheduleId}@${t.scheduledFor}` ||
          t.jitteredFor !== iso(Date.parse(t.scheduledFor) + jitterDelayMs(t.taskId, 1000)) ||
          Date.parse(t.firedAt) < Date.parse(t.jitteredFor),
      );
      expect(wrong.slice(0, 3)).toEqual([]);
      // The delays are spread, not one shared value.
      expect(
        new Set(tasks.map((t) => Date.parse(t.jitteredFor ?? '') - Date.parse(t.scheduledFor))).size,
      ).toBeGreaterThan(10);
      // No instant of the killed owner's entries was lost between the last second it fired and b's settled one.
      const ids = new Set(tasks.map((t) => t.taskId));
      const missing = [...aEntries].flatMap((id) => {
        const out: string[] = [];
        for (let t = before; t <= after; t += 1000)
          if (!ids.has(`${id}@${iso(t)}`)) out.push(`${id}@${iso(t)}`);
        return out;
      });
      expect(missing).toEqual([]);
      // Instances that fired a's entries: both a (before) and b (after), with the same function of the taskId.
      const byB = tasks.filter((t) => aEntries.has(t.scheduleId) && t.scheduler.pid === b.pid);
      expect(byB.length).toBeGreaterThan(0);
    });
  });
});
