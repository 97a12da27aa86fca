import { describe, expect, it } from 'vitest';
import { catchUp } from '../../src/scheduler/catch-up.js';
import { EntryStates } from '../../src/scheduler/entry-states.js';
import { timesOf } from '../../src/scheduler/fire-loop.js';
import { overdueOnce } from '../../src/scheduler/misfire.js';
import { describeNextFires } from '../../src/scheduler/next-command.js';
import { FireEncoder } from '../../src/scheduler/task-records.js';
import { parseState, specHash, specHashOf } from '../../src/shared/codecs/scheduler-state.js';
import { parseScheduleText } from '../../src/shared/config/load.js';
import { ConfigError, formatProblem } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { parseDefinition, TASKS_TOPIC } from '../../src/shared/tasks/definition.js';
import { nextFires } from '../../src/api/task-model.js';
import { parseTaskInput } from '../../src/api/task-input.js';
import type { ScheduleEntry } from '../../src/shared/config/schema.js';
import type { PartitionBatch } from '../../src/shared/kafka/index.js';
import { apiAppPerTest } from './helpers/api-app.js';
import { cronEntry, taskDefinition } from './helpers/entries.js';
import { FakeClock } from './helpers/fake-clock.js';
import { recordingLoop } from './helpers/recording-loop.js';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();
const every10 = (extra: Partial<ScheduleEntry>): ScheduleEntry => cronEntry('a', '*/10 * * * * *', extra);

/** The instants (s after T0) a loop fires for `e` from `startMs` over `forMs`, armed with `known`. */
function firedSeconds(
  e: ScheduleEntry,
  startMs: number,
  forMs: number,
  known?: { lastFiredMs?: number; runs?: number },
) {
  const clock = new FakeClock(startMs);
  const { loop, fires } = recordingLoop(clock);
  loop.add(e, undefined, known);
  loop.start();
  clock.advance(forMs);
  return { seconds: fires.map((f) => (f.scheduledFor - T0) / 1000), fires, loop, clock };
}

describe('StartAt, EndAt and MaxRuns', () => {
  describe('when an entry has a window', () => {
    it('should fire nothing before StartAt nor after EndAt, both included', () => {
      const e = every10({ startAt: iso(T0 + 30_000), endAt: iso(T0 + 60_000) });
      expect(firedSeconds(e, T0 + 300, 120_000).seconds).toEqual([30, 40, 50, 60]);
    });

    it('should catch up only the missed instants inside it', () => {
      const e = every10({ misfire: 'fire-all', endAt: iso(T0 + 40_000) });
      const states = new EntryStates('g');
      states.set('a', { lastFiredMs: T0, specHash: specHashOf(e), paused: false, runs: 0 });
      const armed: number[] = [];
      const { missed } = catchUp([e], states, T0 + 90_000, {
        logger: silentLogger,
        metrics: undefined,
        arm: (x, from, known) =>
          armed.push(timesOf(x).firstDueAfter(known.lastFiredMs ?? -Infinity, from)?.nominal ?? -1),
      });
      expect(missed.map((f) => (f.scheduledFor - T0) / 1000)).toEqual([10, 20, 30, 40]);
      expect(armed).toEqual([-1]);
    });

    it('should never fire a one-shot outside it, however overdue', () => {
      const once = (extra: Partial<ScheduleEntry>) =>
        cronEntry('o', '', { spec: { kind: 'once', runAt: T0 }, ...extra });
      expect(overdueOnce(once({ startAt: iso(T0 + 1) }), undefined, T0 + 5000)).toBeUndefined();
      expect(overdueOnce(once({ endAt: iso(T0 - 1) }), undefined, T0 + 5000)).toBeUndefined();
      expect(overdueOnce(once({ startAt: iso(T0), endAt: iso(T0) }), undefined, T0 + 5000)).toBe(T0);
    });

    it('should preview only its instants in next', () => {
      const e = every10({ startAt: iso(T0 + 30_000), endAt: iso(T0 + 40_000), maxRuns: 7 });
      const text = describeNextFires([e], T0, 5);
      expect(text.split('\n')).toEqual([
        `a: "*/10 * * * * *" UTC (from ${iso(T0 + 30_000)}, until ${iso(T0 + 40_000)}, at most 7 runs) -> t NoopProcessor`,
        `  2026-11-22 10:00:30 UTC    ${iso(T0 + 30_000)}`,
        `  2026-11-22 10:00:40 UTC    ${iso(T0 + 40_000)}`,
      ]);
    });
  });

  describe('when an entry has MaxRuns', () => {
    it('should number its fires and stop after the last', () => {
      const { fires, seconds, loop } = firedSeconds(every10({ maxRuns: 3 }), T0 + 300, 120_000);
      expect(seconds).toEqual([10, 20, 30]);
      expect(fires.map((f) => f.run)).toEqual([1, 2, 3]);
      expect(loop.size).toBe(0);
    });

    it('should go on from the runs its state counted, and arm nothing once they are used up', () => {
      expect(firedSeconds(every10({ maxRuns: 3 }), T0 + 300, 120_000, { runs: 2 }).seconds).toEqual([10]);
      expect(firedSeconds(every10({ maxRuns: 3 }), T0 + 300, 120_000, { runs: 3 }).seconds).toEqual([]);
    });

    it('should not arm again on a reload before its last run is acknowledged', () => {
      const e = every10({ maxRuns: 1 });
      const { seconds, fires, loop, clock } = firedSeconds(e, T0 + 300, 15_000);
      expect(seconds).toEqual([10]);
      // The reload: the state topic has not yet acknowledged the run (runs 0), the loop remembers it.
      loop.add({ ...e }, undefined, { runs: 0 });
      clock.advance(60_000);
      expect(fires.map((f) => (f.scheduledFor - T0) / 1000)).toEqual([10]);
      expect(loop.size).toBe(0);
    });

    it('should catch up no more than the runs left, oldest first', () => {
      const e = every10({ misfire: 'fire-all', maxRuns: 5 });
      const states = new EntryStates('g');
      states.set('a', { lastFiredMs: T0, specHash: specHashOf(e), paused: false, runs: 3 });
      const { missed } = catchUp([e], states, T0 + 60_000, {
        logger: silentLogger,
        metrics: undefined,
        arm: () => undefined,
      });
      expect(missed.map((f) => [(f.scheduledFor - T0) / 1000, f.run])).toEqual([
        [10, 4],
        [20, 5],
      ]);
    });

    it('should write its count in the state record, and read records without one as 0 runs', () => {
      const e = every10({ maxRuns: 5 });
      const records = new FireEncoder('g', 0, { host: 'h', pid: 1, group: 'g' }).records(
        [
          { entry: e, scheduledFor: T0, run: 3 },
          { entry: e, scheduledFor: T0 + 10_000, run: 4 },
        ],
        T0 + 10_001,
      );
      const state = records.find((r) => r.topic === 'taskmanager.scheduler-state');
      expect(records.filter((r) => r.topic === 'taskmanager.scheduler-state')).toHaveLength(1);
      expect(JSON.parse(String(state?.value))).toMatchObject({
        v: 1,
        runs: 4,
        lastFiredAt: iso(T0 + 10_000),
      });
      expect(parseState(Buffer.from(String(state?.value)))?.runs).toBe(4);
      const old = `{"v":1,"lastFiredAt":"${iso(T0)}","specHash":"x","updatedAt":"${iso(T0)}"}`;
      expect(parseState(Buffer.from(old))).toEqual({
        lastFiredMs: T0,
        specHash: 'x',
        paused: false,
        runs: 0,
      });
      // Without MaxRuns the record is what it always was.
      const plain = new FireEncoder('g', 0, { host: 'h', pid: 1, group: 'g' }).records(
        [{ entry: every10({}), scheduledFor: T0 }],
        T0 + 1,
      );
      expect(String(plain.at(-1)?.value)).not.toContain('runs');
    });

    it('should keep the count known when a later record has none (an older instance wrote it)', () => {
      const states = new EntryStates('g');
      const record = (value: string) => ({ key: Buffer.from('g/a'), value: Buffer.from(value) });
      const batch = (values: string[]) =>
        ({
          records: values.map(record),
          resolveOffset: () => undefined,
          lastOffset: () => '0',
        }) as unknown as PartitionBatch;
      states.foldBatch(
        batch([
          `{"v":1,"lastFiredAt":"${iso(T0)}","specHash":"x","updatedAt":"${iso(T0)}","runs":4}`,
          `{"v":1,"lastFiredAt":"${iso(T0 + 1000)}","specHash":"x","updatedAt":"${iso(T0)}"}`,
        ]),
      );
      expect(states.get('a')).toMatchObject({ lastFiredMs: T0 + 1000, runs: 4 });
    });
  });

  describe('when the values are wrong', () => {
    const file = (extra: string) =>
      `[{"Id":"a","Cron":"0 * * * * *","Topic":"taskTopic",${extra}"TaskMessageTemplate":{"TaskProcessorName":"p"}}]`;
    const problems = (extra: string): string[] => {
      try {
        parseScheduleText('f.json', file(extra));
        return [];
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        return err.problems.map(formatProblem);
      }
    };

    it('should load valid ones from a file', () => {
      const [e] = parseScheduleText(
        'f.json',
        file('"StartAt":"2026-12-01T00:00:00+01:00","EndAt":"2026-12-31T00:00:00Z","MaxRuns":3,'),
      );
      expect(e).toMatchObject({
        startAt: '2026-12-01T00:00:00+01:00',
        endAt: '2026-12-31T00:00:00Z',
        maxRuns: 3,
      });
      // A different window or limit is a different definition (instances running different files warn).
      expect(specHash({ ...e!, maxRuns: 4 })).not.toBe(specHash(e!));
      expect(specHash({ ...e!, endAt: undefined })).not.toBe(specHash(e!));
    });

    it('should name each problem in the file on one line', () => {
      expect(problems('"StartAt":"tomorrow","EndAt":"2026-13-01T00:00:00Z","MaxRuns":0,')).toEqual([
        'f.json: [0] (Id "a") MaxRuns: must be >= 1',
        'f.json: [0] (Id "a") StartAt: "tomorrow" is not an RFC 3339 date-time with an offset (e.g. 2026-12-01T09:00:00Z)',
        'f.json: [0] (Id "a") EndAt: "2026-13-01T00:00:00Z" is not an RFC 3339 date-time with an offset (e.g. 2026-12-01T09:00:00Z)',
      ]);
      expect(problems('"StartAt":"2026-12-02T00:00:00Z","EndAt":"2026-12-01T00:00:00Z",')).toEqual([
        'f.json: [0] (Id "a") EndAt: "2026-12-01T00:00:00Z" is before the start (2026-12-02T00:00:00Z): the schedule would never fire',
      ]);
    });

    it('should name each problem of an HTTP body by its pointer', () => {
      const parsed = parseTaskInput({
        processor: 'p',
        schedule: { cron: '0 * * * * *' },
        startAt: '2026-12-02T00:00:00Z',
        endAt: '2026-12-01T00:00:00Z',
        maxRuns: 0,
      });
      expect(parsed.ok).toBe(false);
      if (parsed.ok) return;
      expect(parsed.errors).toEqual(
        expect.arrayContaining([
          {
            pointer: '/endAt',
            detail: 'is before the start (2026-12-02T00:00:00Z): the schedule would never fire',
          },
          expect.objectContaining({ pointer: '/maxRuns' }),
        ]),
      );
    });

    it('should skip a stored definition with one, and preview a valid one inside its window', () => {
      const def = taskDefinition('t', iso(T0), {
        schedule: { every: '10s' },
        startAt: iso(T0 + 25_000),
        maxRuns: 2,
      });
      expect('def' in parseDefinition(Buffer.from(JSON.stringify(def)))).toBe(true);
      expect(nextFires(def, undefined, T0, 2).map((n) => n.utc)).toEqual([
        iso(T0 + 30_000),
        iso(T0 + 40_000),
      ]);
      const bad = { ...def, startAt: 'soon' };
      expect(parseDefinition(Buffer.from(JSON.stringify(bad)))).toEqual({
        problem: 'startAt "soon" is not an RFC 3339 date-time with an offset (e.g. 2026-12-01T09:00:00Z)',
      });
    });
  });

  describe('when taskapi takes a task with them', () => {
    const apps = apiAppPerTest();

    it('should answer them, and refuse a PATCH that would end the window before its start', async () => {
      const api = await apps.open();
      await api.users.addUser('op', 'a-long-enough-password', 'operator', 'test');
      const token = (await api.login('op', 'a-long-enough-password')).body.accessToken as string;
      const call = (method: 'POST' | 'PATCH', url: string, payload: object) =>
        api.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, payload });
      const created = await call('POST', '/api/v1/tasks', {
        id: 'w',
        processor: 'p',
        schedule: { cron: '0 0 9 * * *' },
        startAt: '2026-12-01T00:00:00Z',
        maxRuns: 3,
        jitter: 60,
      });
      expect(created.statusCode).toBe(201);
      expect(created.json()).toMatchObject({ startAt: '2026-12-01T00:00:00Z', maxRuns: 3, jitter: 60 });
      const patched = await call('PATCH', '/api/v1/tasks/w', { endAt: '2026-11-30T00:00:00Z' });
      expect(patched.statusCode).toBe(400);
      expect(patched.json()).toMatchObject({
        errors: [
          {
            pointer: '/endAt',
            detail: 'is before the start (2026-12-01T00:00:00Z): the schedule would never fire',
          },
        ],
      });
      // Past its endAt, a task says it has ended, and has no next run.
      const over = await call('POST', '/api/v1/tasks', {
        processor: 'p',
        schedule: { every: '5s' },
        endAt: '2020-01-01T00:00:00Z',
      });
      expect(over.json()).toMatchObject({ ended: true });
      expect(over.json()).not.toHaveProperty('nextRunAt');
      expect(created.json()).not.toHaveProperty('ended');
      // Every definition written is one the schedulers read.
      const stored = api.kafka.topics.get(TASKS_TOPIC) ?? [];
      expect(stored.map((r) => ('def' in parseDefinition(r.value!) ? 'read' : 'refused'))).toEqual([
        'read',
        'read',
      ]);
    });
  });
});
