import { describe, expect, it } from 'vitest';
import { parseScheduleText } from '../../src/shared/config/load.js';
import { formatDuration, parseDuration } from '../../src/shared/duration.js';
import { parseRfc3339 } from '../../src/shared/rfc3339.js';
import { compileSpec, describeSpec } from '../../src/shared/schedule/spec.js';
import { overdueOnce } from '../../src/scheduler/misfire.js';
import { parseDefinition, specOfTask } from '../../src/shared/tasks/definition.js';
import { scheduleFileProblems, taskDefinition } from './helpers/entries.js';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
const file = (entries: object[]) =>
  JSON.stringify(
    entries.map((e, i) => ({
      Id: `e${i}`,
      Topic: 't',
      TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor' },
      ...e,
    })),
  );
const problems = (text: string): string[] => scheduleFileProblems(text);

describe('durations', () => {
  it('should read Go-style durations and plain ms, and write them back', () => {
    expect(parseDuration('5s')).toBe(5000);
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('1500ms')).toBe(1500);
    expect(parseDuration('1500')).toBe(1500);
    expect(parseDuration(250)).toBe(250);
    for (const bad of ['', 's', '5', '5x', '1s1m', '-5s', '0s', '1.5s'])
      expect(parseDuration(bad), bad).toBe(bad === '5' ? 5 : undefined);
    expect(formatDuration(90_000)).toBe('1m30s');
    expect(formatDuration(3_600_250)).toBe('1h250ms');
  });
});

describe('RFC 3339', () => {
  it('should take date-times with an offset and refuse the rest', () => {
    expect(iso(parseRfc3339('2026-02-20T10:00:00Z'))).toBe('2026-02-20T10:00:00.000Z');
    expect(iso(parseRfc3339('2026-02-20T11:00:00.5+01:00'))).toBe('2026-02-20T10:00:00.500Z');
    for (const bad of [
      '2026-02-20',
      '2026-02-20T10:00:00',
      '2026-02-30T10:00:00Z',
      'tomorrow',
      '2026-02-20 10:00:00Z',
    ])
      expect(parseRfc3339(bad), bad).toBeUndefined();
  });
});

describe('schedule kinds', () => {
  it('once: one instant, then none', () => {
    const c = compileSpec({ kind: 'once', runAt: T0 }, 'UTC');
    expect(iso(c.nextAfter(T0 - 1))).toBe(iso(T0));
    expect(c.nextAfter(T0)).toBeUndefined();
  });

  it('every: anchor + k × interval, strictly after', () => {
    const c = compileSpec({ kind: 'every', everyMs: 5000, anchorMs: T0 + 1234 }, 'UTC');
    expect(iso(c.nextAfter(T0))).toBe('2026-11-22T10:00:01.234Z');
    expect(iso(c.nextAfter(T0 + 1234))).toBe('2026-11-22T10:00:06.234Z');
    expect(iso(c.nextAfter(T0 + 3_600_000))).toBe('2026-11-22T11:00:01.234Z');
    expect(describeSpec({ kind: 'every', everyMs: 90_000, anchorMs: 0 })).toBe('every 1m30s');
  });

  it('should load RunAt and Every entries from a file, Every counted from the epoch', () => {
    const [once, every] = parseScheduleText(
      's.json',
      file([{ RunAt: '2026-12-01T09:00:00+01:00' }, { Every: '10s' }]),
    );
    expect(once?.spec).toEqual({ kind: 'once', runAt: Date.parse('2026-12-01T08:00:00Z') });
    expect(every?.spec).toEqual({ kind: 'every', everyMs: 10_000, anchorMs: 0 });
  });

  it('should name every bad schedule field', () => {
    expect(
      problems(
        file([
          {},
          { Cron: '* * * * * *', Every: '5s' },
          { RunAt: 'tomorrow' },
          { Every: '500ms' },
          { Every: '5 s' },
        ]),
      ),
    ).toEqual([
      's.json: [0] (Id "e0") Cron: needs exactly one of Cron, RunAt and Every (it has none)',
      's.json: [1] (Id "e1") Cron, Every: needs exactly one of Cron, RunAt and Every (it has Cron and Every)',
      's.json: [2] (Id "e2") RunAt: "tomorrow" is not an RFC 3339 date-time with an offset (e.g. 2026-12-01T09:00:00Z)',
      's.json: [3] (Id "e3") Every: "500ms" is below the minimum of 1s',
      's.json: [4] (Id "e4") Every: "5 s" is not a duration like 5s, 1m30s, 2h or 1500 (ms)',
    ]);
  });

  it('a one-shot whose instant passed unfired is due now, once', () => {
    const [e] = parseScheduleText('s.json', file([{ RunAt: '2026-11-22T09:00:00Z' }]));
    if (!e) throw new Error('no entry');
    expect(iso(overdueOnce(e, undefined, T0))).toBe('2026-11-22T09:00:00.000Z');
    expect(overdueOnce(e, Date.parse('2026-11-22T09:00:00Z'), T0)).toBeUndefined();
    expect(overdueOnce(e, undefined, Date.parse('2026-11-22T08:00:00Z'))).toBeUndefined();
  });
});

describe('task definitions (taskmanager.tasks)', () => {
  const def = (over: object) =>
    Buffer.from(
      JSON.stringify({
        ...taskDefinition('a', '2026-11-22T10:00:00.250Z', { group: 'taskscheduler-api' }),
        ...over,
      }),
    );

  it('should take a valid one, its every counted from its creation', () => {
    const parsed = parseDefinition(def({}));
    if (!('def' in parsed)) throw new Error(parsed.problem);
    expect(specOfTask(parsed.def)).toEqual({
      kind: 'every',
      everyMs: 5000,
      anchorMs: Date.parse('2026-11-22T10:00:00.250Z'),
    });
  });

  it('should say what is wrong with a bad one', () => {
    const problem = (over: object) => {
      const parsed = parseDefinition(def(over));
      return 'problem' in parsed ? parsed.problem : 'ok';
    };
    expect(problem({ schedule: { cron: '61 * * * * *' } })).toBe(
      'schedule.cron "61 * * * * *": second must be 0-59 (got 61)',
    );
    expect(problem({ schedule: { every: '500ms' } })).toBe(
      'schedule.every "500ms" is below the minimum of 1s',
    );
    expect(problem({ schedule: { runAt: 'soon' } })).toBe('schedule.runAt "soon" is not RFC 3339');
    expect(problem({ timeZone: 'Mars/Base' })).toBe('timeZone "Mars/Base" is not an IANA zone');
    expect(problem({ extra: 1 })).toMatch(/must NOT have additional properties/);
    expect(parseDefinition(Buffer.from('{'))).toMatchObject({ problem: expect.stringMatching(/^not JSON/) });
  });
});
