import { describe, expect, it } from 'vitest';
import { timesOf } from '../../src/scheduler/fire-loop.js';
import type { Fire } from '../../src/scheduler/fire-loop.js';
import { catchUp } from '../../src/scheduler/catch-up.js';
import { EntryStates } from '../../src/scheduler/entry-states.js';
import { misfireOf, overdueOnce } from '../../src/scheduler/misfire.js';
import { describeNextFires } from '../../src/scheduler/next-command.js';
import { FireEncoder } from '../../src/scheduler/task-records.js';
import { compileSpec } from '../../src/shared/schedule/spec.js';
import { fireText, jitterDelayMs, JitteredSchedule } from '../../src/shared/schedule/jitter.js';
import { decodeTaskMessage, encodeTaskMessage, taskMessageOf } from '../../src/shared/codecs/task-message.js';
import { specHash, specHashOf } from '../../src/shared/codecs/scheduler-state.js';
import { parseScheduleText } from '../../src/shared/config/load.js';
import { ConfigError } from '../../src/shared/errors.js';
import { entryOfTask, parseDefinition, specOfTask } from '../../src/shared/tasks/definition.js';
import { nextFires } from '../../src/api/task-model.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { ScheduleEntry } from '../../src/shared/config/schema.js';
import { cronEntry, taskDefinition } from './helpers/entries.js';
import { FakeClock } from './helpers/fake-clock.js';
import { recordingLoop } from './helpers/recording-loop.js';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();

/** Every 10 s with a jitter of `jitter` s. */
function every10(id: string, jitter: number, extra: Partial<ScheduleEntry> = {}): ScheduleEntry {
  return cronEntry(id, '*/10 * * * * *', { jitter, ...extra });
}

/** Runs a loop over `entries` from `startMs` for `forMs`, each fire with the time it was handed out. */
function run(entries: ScheduleEntry[], startMs: number, forMs: number) {
  const clock = new FakeClock(startMs);
  const { loop, fires } = recordingLoop(clock);
  for (const e of entries) loop.add(e);
  loop.start();
  clock.advance(forMs);
  loop.stop();
  return fires;
}

describe('jitter', () => {
  describe('when a delay is computed from a taskId', () => {
    it('should be the same every time, in [0, bound), and differ between taskIds', () => {
      const ids = Array.from({ length: 200 }, (_, i) => `s${i}@2026-11-22T10:00:00.000Z`);
      const delays = ids.map((id) => jitterDelayMs(id, 30_000));
      expect(ids.map((id) => jitterDelayMs(id, 30_000))).toEqual(delays);
      for (const d of delays) {
        expect(Number.isInteger(d)).toBe(true);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(30_000);
      }
      // A herd of 200 identical specs is spread: over all six 5 s slices of the 30 s, none holding most of them.
      const slices = new Set(delays.map((d) => Math.floor(d / 5000)));
      expect(slices.size).toBe(6);
      expect(new Set(delays).size).toBeGreaterThan(190);
      expect(jitterDelayMs('x@t', 0)).toBe(0);
    });
  });

  describe('when the jitter is longer than the interval', () => {
    it('should delay each fire by less than the gap to the next, so fires keep their order', () => {
      const times = new JitteredSchedule(
        compileSpec({ kind: 'cron', cron: '*/10 * * * * *' }, 'UTC'),
        'a',
        3600,
      );
      let t = T0;
      let lastDue = -Infinity;
      for (let i = 0; i < 500; i++, t += 10_000) {
        const due = times.dueOf(t);
        expect(due).toBeGreaterThanOrEqual(t);
        expect(due).toBeLessThan(t + 10_000);
        expect(due).toBeGreaterThan(lastDue);
        lastDue = due;
      }
    });
  });

  describe('when a loop fires an entry with jitter', () => {
    it('should fire each instant once at its delayed time, never before, carrying the nominal instant', () => {
      const e = every10('a', 8);
      const fires = run([e], T0 - 500, 60_000);
      // Every instant due by the end (T0 + 59.5 s), from T0 on.
      const due = [0, 10, 20, 30, 40, 50]
        .map((s) => T0 + s * 1000)
        .filter((t) => timesOf(e).dueOf(t) <= T0 + 59_500);
      expect(due.length).toBeGreaterThanOrEqual(5);
      expect(fires.map((f) => iso(f.scheduledFor))).toEqual(due.map(iso));
      for (const f of fires) {
        expect(f.dueAt).toBe(f.scheduledFor + jitterDelayMs(`a@${iso(f.scheduledFor)}`, 8000));
        expect(f.at).toBe(f.dueAt);
      }
      // Not all the same delay: the jitter varies per instant.
      expect(new Set(fires.map((f) => f.at - f.scheduledFor)).size).toBeGreaterThan(1);
    });

    it('should spread a herd of identical specs over the jitter', () => {
      const herd = Array.from({ length: 50 }, (_, i) => cronEntry(`h${i}`, '0 * * * * *', { jitter: 30 }));
      const fires = run(herd, T0 - 500, 40_000);
      expect(fires).toHaveLength(50);
      for (const f of fires) expect(f.scheduledFor).toBe(T0);
      const at = fires.map((f) => f.at - f.scheduledFor);
      expect(Math.max(...at) - Math.min(...at)).toBeGreaterThan(20_000);
      expect(Math.max(...at)).toBeLessThan(30_000);
    });

    it('should fire no differently without jitter, and say no due instant', () => {
      const fires = run([every10('a', 0)], T0 + 300, 30_000);
      expect(fires.map((f) => f.at - T0)).toEqual([10_000, 20_000, 30_000]);
      for (const f of fires) expect(f.dueAt).toBeUndefined();
    });
  });

  describe('when another instance takes over in the middle of a jittered run', () => {
    it('should fire the same instants at the same times as one instance would, none twice', () => {
      const e = every10('a', 9, { misfire: 'fire-all' });
      const whole = run([e], T0 + 300, 120_000);
      // The new owner reads the state 1 s after an instant that is not yet due (its delay is longer): the old
      // code armed from now and never fired it. The first owner died 3 s before, having fired what was due by then.
      const pending = whole.find((f) => f.scheduledFor > T0 + 20_000 && f.at - f.scheduledFor > 1500);
      if (!pending) throw new Error('no instant with a delay over 1.5 s');
      const takeoverAt = pending.scheduledFor + 1000;
      const failAt = takeoverAt - 3000;
      const before = whole.filter((f) => f.at <= failAt);
      const states = new EntryStates('g');
      states.set(e.id, {
        lastFiredMs: before.at(-1)!.scheduledFor,
        specHash: specHashOf(e),
        paused: false,
        runs: 0,
      });
      const clock = new FakeClock(takeoverAt);
      const { loop, fires: after } = recordingLoop(clock);
      const { missed } = catchUp([e], states, takeoverAt, {
        logger: silentLogger,
        metrics: undefined,
        arm: (x, from, known) => loop.add(x, from, known),
      });
      after.push(...missed.map((f) => ({ ...f, at: takeoverAt })));
      loop.start();
      clock.advance(T0 + 300 + 120_000 - takeoverAt);
      const all = [...before, ...after];
      // Same taskIds and due instants as the uninterrupted run; each once.
      const key = (f: Fire) => `${iso(f.scheduledFor)} due ${iso(f.dueAt ?? NaN)}`;
      expect(all.map(key)).toEqual(whole.map(key));
      // The ones due while nobody owned the entry go out at the takeover, late; none before it was due.
      for (const f of all) expect(f.at).toBeGreaterThanOrEqual(f.dueAt ?? NaN);
    });

    it('should arm, not miss, an instant of the past whose delay ends after the takeover', () => {
      const e = every10('a', 9, { misfire: 'skip' });
      const times = timesOf(e);
      // Find an instant whose delay is over 1 s and take over 1 ms after it, before it is due.
      let t = T0 + 10_000;
      while (times.dueOf(t) - t < 1000) t += 10_000;
      const now = t + 1;
      expect(misfireOf(e, times.compiled, t - 10_000, now)).toEqual({ fire: [], missed: 0 });
      expect(times.firstDueAfter(t - 10_000, now)).toEqual({ nominal: t, due: times.dueOf(t) });
      // Once it is due and still unfired, it is missed (and `skip` drops it).
      expect(misfireOf(e, times.compiled, t - 10_000, times.dueOf(t)).missed).toBe(1);
    });

    it('should hold a one-shot until its delay has passed', () => {
      const e = cronEntry('once', '', { spec: { kind: 'once', runAt: T0 }, jitter: 60 });
      const due = timesOf(e).dueOf(T0);
      expect(due).toBeGreaterThan(T0);
      expect(overdueOnce(e, undefined, due - 1)).toBeUndefined();
      expect(overdueOnce(e, undefined, due)).toBe(T0);
      expect(timesOf(e).firstDueAfter(-Infinity, due - 1)).toEqual({ nominal: T0, due });
    });
  });

  describe('when the fire is encoded', () => {
    it('should carry the nominal and the jittered instant, the same bytes as the typed encoder', () => {
      const e = every10('a', 8);
      const scheduler = { host: 'h1', pid: 42, group: 'g' };
      const dueAt = T0 + 1234;
      const [task] = new FireEncoder('g', 0, scheduler).records(
        [{ entry: e, scheduledFor: T0, dueAt }],
        T0 + 1240,
      );
      const typed = taskMessageOf(
        { scheduleId: 'a', processor: e.processor },
        T0,
        T0 + 1240,
        scheduler,
        dueAt,
      );
      expect(String(task?.value)).toBe(encodeTaskMessage(typed));
      const decoded = decodeTaskMessage(Buffer.from(String(task?.value)));
      expect(decoded.taskId).toBe(`a@${iso(T0)}`);
      expect(decoded.scheduledFor).toBe(iso(T0));
      expect(decoded.jitteredFor).toBe(iso(dueAt));
    });

    it('should still read a task message without the jittered instant', () => {
      const old = taskMessageOf({ scheduleId: 'a', processor: 'p' }, T0, T0, {
        host: 'h',
        pid: 1,
        group: 'g',
      });
      expect(encodeTaskMessage(old)).not.toContain('jitteredFor');
      expect(decodeTaskMessage(Buffer.from(encodeTaskMessage(old))).jitteredFor).toBeUndefined();
    });
  });

  describe('when a schedule file sets JitterSeconds', () => {
    const file = (extra: string) =>
      `[{"Id":"a","Cron":"0 * * * * *","Topic":"taskTopic",${extra}"TaskMessageTemplate":{"TaskProcessorName":"p"}}]`;

    it('should load it as the entry jitter and change its hash only then', () => {
      const [e] = parseScheduleText('f.json', file('"JitterSeconds":30,'));
      const [plain] = parseScheduleText('f.json', file(''));
      expect(e?.jitter).toBe(30);
      expect(plain?.jitter).toBeUndefined();
      expect(specHash(e!)).not.toBe(specHash(plain!));
      expect(specHash({ ...e!, jitter: 0 })).toBe(specHash(plain!));
    });

    it('should refuse a bad value with one line naming file, entry and field', () => {
      for (const [value, why] of [
        ['-1', 'must be >= 0'],
        ['1.5', 'must be integer'],
        ['86401', 'must be <= 86400'],
        ['"30s"', 'must be integer'],
      ])
        try {
          parseScheduleText('f.json', file(`"JitterSeconds":${value},`));
          expect.unreachable();
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          expect((err as ConfigError).message).toContain(`f.json: [0] (Id "a") JitterSeconds: ${why}`);
        }
    });

    it('should show the nominal and the due instant in next', () => {
      const [e] = parseScheduleText('f.json', file('"JitterSeconds":30,'));
      const text = describeNextFires([e!], T0 + 300, 2);
      // The instant of T0 may still be to come (its delay not over); the next minute's certainly is.
      const due = timesOf(e!).dueOf(T0 + 60_000);
      expect(text).toContain('a: "0 * * * * *" UTC (jitter 30s) -> taskTopic p');
      expect(text).toContain(`${iso(T0 + 60_000)} due ${iso(due)} (+`);
      expect(fireText(iso(T0), iso(T0 + 1500))).toBe(`${iso(T0)}+1s500ms`);
      expect(fireText(iso(T0), undefined)).toBe(iso(T0));
    });
  });

  describe('when an API task sets jitter', () => {
    it('should fire with it and show its due instants', () => {
      const def = taskDefinition('t', iso(T0), { schedule: { cron: '0 * * * * *' }, jitter: 45 });
      const parsed = parseDefinition(Buffer.from(JSON.stringify(def)));
      expect('def' in parsed).toBe(true);
      const spec = specOfTask(def);
      if (typeof spec === 'string') throw new Error(spec);
      const e = entryOfTask(def, spec);
      expect(e.jitter).toBe(45);
      const [first] = nextFires(def, undefined, T0 - 500, 1);
      expect(first).toEqual({
        utc: iso(T0),
        local: '2026-11-22 10:00:00 UTC',
        jitteredFor: iso(timesOf(e).dueOf(T0)),
      });
      expect('problem' in parseDefinition(Buffer.from(JSON.stringify({ ...def, jitter: -5 })))).toBe(true);
    });
  });
});
