import { describe, expect, it } from 'vitest';
import { expiredGap, misfireOf, missedInstants } from '../../src/scheduler/misfire.js';
import { partitionForKey } from '../../src/shared/kafka/index.js';
import type { ScheduleEntry } from '../../src/shared/config/schema.js';
import { compileCron } from '../../src/shared/cron.js';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');
const entry = (misfire: ScheduleEntry['misfire'], misfireWindowSeconds = 3600): ScheduleEntry => ({
  id: 'a',
  spec: { kind: 'cron', cron: '*/10 * * * * *' },
  topic: 't',
  timeZone: 'UTC',
  enabled: true,
  misfire,
  misfireWindowSeconds,
  processor: 'NoopProcessor',
  index: 0,
});
const cron = compileCron('*/10 * * * * *', 'UTC');
const rel = (ts: number[]) => ts.map((t) => (t - T0) / 1000);

describe('missed fire times on takeover', () => {
  describe('when the entry was never fired', () => {
    it('should fire nothing (a new entry starts from now)', () => {
      expect(missedInstants(entry('fire-all'), cron, undefined, T0 + 60_000)).toEqual([]);
    });
  });

  describe('when fire times were missed', () => {
    it('fire-all should fire each, oldest first', () => {
      expect(rel(missedInstants(entry('fire-all'), cron, T0, T0 + 45_000))).toEqual([10, 20, 30, 40]);
    });
    it('fire-once should fire the latest only', () => {
      expect(rel(missedInstants(entry('fire-once'), cron, T0, T0 + 45_000))).toEqual([40]);
    });
    it('skip should fire none', () => {
      expect(missedInstants(entry('skip'), cron, T0, T0 + 45_000)).toEqual([]);
    });

    it('should count every missed instant whatever fires (for the misfire metrics)', () => {
      expect(misfireOf(entry('skip'), cron, T0, T0 + 45_000)).toEqual({
        fire: [],
        missed: 4,
        dropped: { count: 4, first: T0 + 10_000, last: T0 + 40_000, expired: 0 },
      });
      expect(misfireOf(entry('fire-once'), cron, T0, T0 + 45_000).missed).toBe(4);
    });
    it('should say which instants it does not fire (for the missed alert), none when it fires all', () => {
      expect(misfireOf(entry('fire-once'), cron, T0, T0 + 45_000).dropped).toEqual({
        count: 3,
        first: T0 + 10_000,
        last: T0 + 30_000,
        expired: 0,
      });
      expect(misfireOf(entry('fire-all'), cron, T0, T0 + 45_000).dropped).toBeUndefined();
    });
    it('should drop times older than the misfire window, and say so (the owner was down past the window)', () => {
      expect(rel(missedInstants(entry('fire-all', 25), cron, T0, T0 + 45_000))).toEqual([20, 30, 40]);
      expect(misfireOf(entry('fire-all', 25), cron, T0, T0 + 45_000).dropped).toEqual({
        count: 1,
        first: T0 + 10_000,
        last: T0 + 10_000,
        expired: 1,
      });
      // fire-once: the older than the window and those but the latest in it.
      expect(misfireOf(entry('fire-once', 25), cron, T0, T0 + 45_000).dropped).toEqual({
        count: 3,
        first: T0 + 10_000,
        last: T0 + 30_000,
        expired: 1,
      });
      // None in the window at all: every instant since the last fired one expired.
      expect(misfireOf(entry('fire-once', 5), cron, T0, T0 + 48_000)).toEqual({
        fire: [],
        missed: 0,
        dropped: { count: 4, first: T0 + 10_000, last: T0 + 40_000, expired: 4 },
      });
    });
    it('should count at most 10,000 instants older than the window, and still name the last of them', () => {
      const every = compileCron('* * * * * *', 'UTC');
      const e = { ...entry('skip', 60), spec: { kind: 'cron' as const, cron: '* * * * * *' } };
      // Down five hours with a window of a minute: 17,939 seconds expired, the 61 in the window dropped by skip.
      const m = misfireOf(e, every, T0, T0 + 5 * 3600_000);
      expect(m.dropped).toEqual({
        count: 10_061,
        first: T0 + 1000,
        last: T0 + 5 * 3600_000,
        expired: 10_000,
        more: true,
      });
      expect(expiredGap(every, T0, T0 + 20_000_000)).toMatchObject({ count: 10_000, last: T0 + 20_000_000 });
      expect(expiredGap(every, T0, T0 + 3000)).toEqual({
        count: 3,
        first: T0 + 1000,
        last: T0 + 3000,
        expired: 3,
      });
      expect(expiredGap(cron, T0, T0 + 9_999)).toBeUndefined();
    });
    it('should cap fire-all at the latest 1000', () => {
      const every = compileCron('* * * * * *', 'UTC');
      const out = missedInstants(
        { ...entry('fire-all'), spec: { kind: 'cron', cron: '* * * * * *' } },
        every,
        T0,
        T0 + 2000_000,
      );
      expect(out).toHaveLength(1000);
      expect(out.at(-1)).toBe(T0 + 2000_000);
    });
    it('should never return the last fired instant or one after now', () => {
      const out = missedInstants(entry('fire-all'), cron, T0 + 10_000, T0 + 30_000);
      expect(rel(out)).toEqual([20, 30]);
    });
  });
});

describe('state partition of an entry', () => {
  describe('when computed for a key', () => {
    it("should agree with the Java client's murmur2 partitioner", () => {
      // Reference values computed with the Java client (Utils.toPositive(Utils.murmur2(key)) % 12, Kafka 4.3.1).
      expect(partitionForKey('a', 12)).toBe(4);
      expect(partitionForKey('taskscheduler-taskscheduler/1', 12)).toBe(1);
      expect(partitionForKey('g/7', 12)).toBe(10);
      expect(partitionForKey('taskscheduler-x/Ünïcode', 12)).toBe(6);
      const spread = new Set(Array.from({ length: 200 }, (_, i) => partitionForKey(`g/${i}`, 12)));
      expect(spread.size).toBe(12);
    });
  });
});
