import { describe, expect, it } from 'vitest';
import { FireLoop } from '../../src/scheduler/fire-loop.js';
import type { DroppedInstants } from '../../src/scheduler/misfire.js';
import { silentLogger } from '../../src/shared/logger.js';
import { cronEntry } from './helpers/entries.js';
import { FakeClock } from './helpers/fake-clock.js';
import { recordingLoop } from './helpers/recording-loop.js';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');

const entry = cronEntry;

function setup(startMs = T0 + 300) {
  const clock = new FakeClock(startMs);
  const { loop, fires } = recordingLoop(clock);
  const iso = () => fires.map((f) => `${f.entry.id}@${new Date(f.scheduledFor).toISOString()}`);
  return { clock, loop, fires, iso };
}

describe('FireLoop', () => {
  describe('when an entry fires every second', () => {
    it('should fire each second once, never before its instant', () => {
      const { clock, loop, fires, iso } = setup();
      loop.add(entry('a', '* * * * * *'));
      loop.start();
      clock.advance(3000);
      expect(iso()).toEqual([
        'a@2026-11-22T10:00:01.000Z',
        'a@2026-11-22T10:00:02.000Z',
        'a@2026-11-22T10:00:03.000Z',
      ]);
      for (const f of fires) expect(f.at).toBeGreaterThanOrEqual(f.scheduledFor);
    });
  });

  describe('when the spec has 5 fields', () => {
    it('should fire at second 0 of each minute', () => {
      const { clock, loop, iso } = setup();
      loop.add(entry('m', '*/2 * * * *'));
      loop.start();
      clock.advance(5 * 60_000);
      expect(iso()).toEqual(['m@2026-11-22T10:02:00.000Z', 'm@2026-11-22T10:04:00.000Z']);
    });
  });

  describe('when the timer wakes early', () => {
    it('should not fire early, and fire once when the instant comes', () => {
      const { clock, loop, fires } = setup();
      clock.timerSkewMs = -1;
      loop.add(entry('a', '* * * * * *'));
      loop.start();
      clock.advance(2500);
      expect(fires.map((f) => f.scheduledFor - T0)).toEqual([1000, 2000]);
      for (const f of fires) expect(f.at).toBeGreaterThanOrEqual(f.scheduledFor);
    });
  });

  describe('when the wall clock steps back', () => {
    it('should not fire an instant it already fired', () => {
      const { clock, loop, iso } = setup();
      loop.add(entry('a', '* * * * * *'));
      loop.start();
      clock.advance(2000); // fired :01 and :02
      clock.set(T0 + 500); // NTP steps back 1.8 s
      clock.advance(4000);
      expect(iso()).toEqual([
        'a@2026-11-22T10:00:01.000Z',
        'a@2026-11-22T10:00:02.000Z',
        'a@2026-11-22T10:00:03.000Z',
        'a@2026-11-22T10:00:04.000Z',
      ]);
    });
  });

  describe('when the wall clock jumps forward within the misfire window', () => {
    it('should fire every missed instant late, oldest first, none dropped', () => {
      const { clock, loop, fires } = setup();
      loop.add(entry('a', '*/10 * * * * *'));
      loop.start();
      clock.set(T0 + 35_000);
      clock.advance(1500);
      expect(fires.map((f) => f.scheduledFor - T0)).toEqual([10_000, 20_000, 30_000]);
      expect(new Set(fires.map((f) => f.at)).size).toBe(1);
      expect(fires[0]?.at).toBeLessThanOrEqual(T0 + 36_000);
    });
  });

  describe('when instants are older than MisfireWindowSeconds', () => {
    it('should drop them and fire the ones inside the window', () => {
      const { clock, loop, fires } = setup();
      loop.add(entry('a', '*/10 * * * * *', { misfireWindowSeconds: 15 }));
      loop.start();
      clock.set(T0 + 60_000);
      clock.advance(1000);
      expect(fires.map((f) => f.scheduledFor - T0)).toEqual([50_000, 60_000]);
    });

    it('should tell which instants it dropped, once per gap (for the metric and the missed alert)', () => {
      const clock = new FakeClock(T0 + 300);
      const dropped: Array<[string, DroppedInstants]> = [];
      const loop = new FireLoop({
        clock,
        logger: silentLogger,
        onFires: () => undefined,
        onDropped: (e, d) => dropped.push([e.id, d]),
      });
      loop.add(entry('a', '*/10 * * * * *', { misfireWindowSeconds: 15 }));
      loop.start();
      // Stalled (a paused VM) from T0 to T0 + 61 s: 10..40 are older than the window, 50 and 60 fire.
      clock.set(T0 + 60_000);
      clock.advance(1000);
      expect(dropped).toEqual([['a', { count: 4, first: T0 + 10_000, last: T0 + 40_000, expired: 4 }]]);
      clock.advance(30_000);
      expect(dropped).toHaveLength(1);
    });
  });

  describe('when the next instant is months away', () => {
    it('should sleep in bounded steps and fire on the day', () => {
      const { clock, loop, iso } = setup();
      loop.add(entry('y', '0 0 0 1 1 *'));
      loop.start();
      expect(clock.maxPendingDelay()).toBeLessThanOrEqual(1000);
      clock.advance(60 * 24 * 3600 * 1000);
      expect(iso()).toEqual(['y@2027-01-01T00:00:00.000Z']);
    });
  });

  describe('when an entry is in a time zone', () => {
    it('should fire at the wall-clock time of that zone', () => {
      const { clock, loop, iso } = setup();
      loop.add(entry('ny', '0 0 9 * * *', { timeZone: 'America/New_York' }));
      loop.start();
      clock.advance(24 * 3600 * 1000);
      expect(iso()).toEqual(['ny@2026-11-22T14:00:00.000Z']);
    });
  });

  describe('when the loop runs across both DST changes of a European and an American zone', () => {
    it('should fire each daily time once, a skipped one at the end of the gap', () => {
      const clock = new FakeClock(Date.parse('2026-03-01T00:00:00Z'));
      const fires: string[] = [];
      const loop = new FireLoop({
        clock,
        logger: silentLogger,
        onFires: (fs) =>
          fs.forEach((f) => fires.push(`${f.entry.id}@${new Date(f.scheduledFor).toISOString()}`)),
        maxSleepMs: 3_600_000,
      });
      loop.add(entry('berlin', '0 30 2 * * *', { timeZone: 'Europe/Berlin' }));
      loop.add(entry('ny', '0 30 1 * * *', { timeZone: 'America/New_York' }));
      loop.start();
      clock.advance(250 * 86_400_000);
      const on = (id: string, day: string) => fires.filter((f) => f.startsWith(`${id}@${day}`));
      expect(fires.filter((f) => f.startsWith('berlin@'))).toHaveLength(250);
      expect(on('berlin', '2026-03-29')).toEqual(['berlin@2026-03-29T01:00:00.000Z']); // 02:30 skipped → 03:00 CEST
      expect(on('berlin', '2026-10-25')).toEqual(['berlin@2026-10-25T00:30:00.000Z']); // first 02:30 (CEST) only
      expect(on('ny', '2026-11-01')).toEqual(['ny@2026-11-01T05:30:00.000Z']); // first 01:30 (EDT) only
      expect(on('ny', '2026-03-08')).toEqual(['ny@2026-03-08T06:30:00.000Z']); // 01:30 EST exists
      expect(new Set(fires).size).toBe(fires.length);
    });
  });

  describe('when an entry is disabled or removed', () => {
    it('should never fire it', () => {
      const { clock, loop, iso } = setup();
      loop.add(entry('off', '* * * * * *', { enabled: false }));
      loop.add(entry('gone', '* * * * * *'));
      loop.start();
      clock.advance(1000);
      loop.remove('gone');
      clock.advance(3000);
      expect(iso()).toEqual(['gone@2026-11-22T10:00:01.000Z']);
    });
  });

  describe('when an entry is replaced', () => {
    it('should keep its last fired instant so nothing fires twice', () => {
      const { clock, loop, iso } = setup();
      loop.add(entry('a', '* * * * * *'));
      loop.start();
      clock.advance(1000);
      loop.add(entry('a', '*/2 * * * * *'), T0);
      clock.advance(3000);
      expect(iso()).toEqual([
        'a@2026-11-22T10:00:01.000Z',
        'a@2026-11-22T10:00:02.000Z',
        'a@2026-11-22T10:00:04.000Z',
      ]);
    });
  });

  describe('when many entries are due at the same instant', () => {
    it('should hand them out together in one call', () => {
      const clock = new FakeClock(T0 + 300);
      const calls: number[] = [];
      const loop = new FireLoop({ clock, logger: silentLogger, onFires: (fs) => calls.push(fs.length) });
      for (let i = 0; i < 1000; i++) loop.add(entry(`e${i}`, '* * * * * *'));
      loop.start();
      clock.advance(1000);
      expect(calls).toEqual([1000]);
    });
  });

  describe('when entries are added while it runs', () => {
    it('should set its timer again only for an entry due before it wakes, and fire each entry once at its instant', () => {
      const { clock, loop, iso } = setup();
      let timersSet = 0;
      const setTimeout = clock.setTimeout.bind(clock);
      clock.setTimeout = (fn, ms) => (timersSet++, setTimeout(fn, ms));
      loop.start();
      const once = (id: string, atMs: number) =>
        entry(id, '* * * * * *', { spec: { kind: 'once', runAt: T0 + atMs } });
      loop.add(once('late', 900));
      const afterFirst = timersSet;
      for (let i = 0; i < 100; i++) loop.add(once(`later-${i}`, 950 + i));
      expect(timersSet).toBe(afterFirst);
      loop.add(once('sooner', 600));
      expect(timersSet).toBe(afterFirst + 1);
      clock.advance(2000);
      expect(iso()).toEqual([
        'sooner@2026-11-22T10:00:00.600Z',
        'late@2026-11-22T10:00:00.900Z',
        ...Array.from({ length: 100 }, (_, i) => `later-${i}@${new Date(T0 + 950 + i).toISOString()}`),
      ]);
    });
  });
});
