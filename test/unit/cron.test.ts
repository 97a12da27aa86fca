import { describe, expect, it } from 'vitest';
import { compileCron, cronNext, NextMemo, validateCronSpec } from '../../src/shared/cron.js';
import { nextInstants } from '../../src/shared/schedule/compiled.js';
import { seededRandom } from '../kit/random.js';

const iso = (ms: number[]) => ms.map((t) => new Date(t).toISOString());

describe('cron math', () => {
  describe('when a spec is invalid', () => {
    it.each([
      ['61 * * * * *', 'second must be 0-59 (got 61)'],
      ['* 60 * * * *', 'minute must be 0-59 (got 60)'],
      ['* 24 * * *', 'hour must be 0-23 (got 24)'],
      ['* * * *', 'has 4 fields; expected 6 (seconds first) or 5 (minute precision)'],
      ['', 'is empty'],
    ])('should explain %j', (spec, message) => {
      expect(() => validateCronSpec(spec)).toThrow(message);
    });
  });

  describe('when a spec is valid', () => {
    it.each([
      '* * * * * *',
      '*/5 * * * *',
      '0 0 12 * * MON#2',
      '0 0 0 L * *',
      '@hourly',
      '0 0 9 * * MON-FRI',
    ])('should accept %j', (spec) => expect(() => validateCronSpec(spec)).not.toThrow());
  });

  describe('when computing next instants', () => {
    it('should give seconds precision for 6 fields', () => {
      const c = compileCron('*/15 * * * * *', 'UTC');
      expect(iso(nextInstants(c, Date.parse('2026-11-22T10:00:05.000Z'), 3))).toEqual([
        '2026-11-22T10:00:15.000Z',
        '2026-11-22T10:00:30.000Z',
        '2026-11-22T10:00:45.000Z',
      ]);
    });

    it('should answer each instant right when shared entries ask in turn (remembered last answer)', () => {
      for (const zone of ['UTC', 'Europe/Berlin']) {
        const c = compileCron('0 */10 * * * *', zone);
        const a = Date.parse('2026-11-22T10:00:05.000Z');
        const b = Date.parse('2026-11-22T10:25:00.000Z');
        expect(
          iso([c.nextAfter(a) ?? 0, c.nextAfter(a) ?? 0, c.nextAfter(b) ?? 0, c.nextAfter(a) ?? 0]),
        ).toEqual([
          '2026-11-22T10:10:00.000Z',
          '2026-11-22T10:10:00.000Z',
          '2026-11-22T10:30:00.000Z',
          '2026-11-22T10:10:00.000Z',
        ]);
      }
    });

    it('should treat 5 fields as minutes with second 0', () => {
      const c = compileCron('30 9 * * *', 'UTC');
      expect(iso(nextInstants(c, Date.parse('2026-11-22T10:00:05.000Z'), 1))).toEqual([
        '2026-11-23T09:30:00.000Z',
      ]);
    });

    it('should be strictly after the given instant', () => {
      const c = compileCron('* * * * * *', 'UTC');
      expect(c.nextAfter(Date.parse('2026-11-22T10:00:05.000Z'))).toBe(
        Date.parse('2026-11-22T10:00:06.000Z'),
      );
      expect(c.nextAfter(Date.parse('2026-11-22T10:00:05.999Z'))).toBe(
        Date.parse('2026-11-22T10:00:06.000Z'),
      );
    });

    it('should follow the zone, across a DST change', () => {
      const c = compileCron('0 0 9 * * *', 'Europe/Berlin');
      expect(iso(nextInstants(c, Date.parse('2026-10-24T00:00:00Z'), 2))).toEqual([
        '2026-10-24T07:00:00.000Z', // CEST, UTC+2
        '2026-10-25T08:00:00.000Z', // CET, UTC+1
      ]);
    });

    it('should keep a fixed interval in real time across fall-back', () => {
      const c = compileCron('0 */30 * * * *', 'Europe/Berlin');
      const t = nextInstants(c, Date.parse('2026-10-25T00:00:00Z'), 4);
      expect(t.slice(1).map((x, i) => x - (t[i] as number))).toEqual([1_800_000, 1_800_000, 1_800_000]);
    });

    it.each([
      [
        'Europe/Berlin',
        '0 30 2 * * *',
        '2026-03-28T12:00:00Z',
        ['2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z'],
      ],
      [
        'America/New_York',
        '0 30 2 * * *',
        '2026-03-07T12:00:00Z',
        ['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z'],
      ],
    ])(
      'should fire a time skipped by spring-forward once, at the first instant after the gap (%s)',
      (zone, spec, from, expected) => {
        expect(iso(nextInstants(compileCron(spec, zone), Date.parse(from), 2))).toEqual(expected);
      },
    );

    it.each([
      [
        'Europe/Berlin',
        '0 30 2 * * *',
        '2026-10-24T12:00:00Z',
        ['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z'],
      ],
      [
        'America/New_York',
        '0 30 1 * * *',
        '2026-10-31T12:00:00Z',
        ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z'],
      ],
    ])(
      'should fire a time repeated by fall-back once, at its first occurrence (%s)',
      (zone, spec, from, expected) => {
        expect(iso(nextInstants(compileCron(spec, zone), Date.parse(from), 2))).toEqual(expected);
      },
    );

    it.each(['Europe/Berlin', 'America/New_York'])(
      'should keep */30 minutes in real time across both changes in %s',
      (zone) => {
        const c = compileCron('0 */30 * * * *', zone);
        for (const from of [
          '2026-03-07T00:00:00Z',
          '2026-03-28T20:00:00Z',
          '2026-10-24T20:00:00Z',
          '2026-10-31T20:00:00Z',
        ]) {
          const t = nextInstants(c, Date.parse(from), 24);
          expect(t.slice(1).map((x, i) => x - (t[i] as number))).toEqual(Array(23).fill(1_800_000));
        }
      },
    );

    it('should find a fire time months away', () => {
      expect(
        iso(
          nextInstants(compileCron('0 0 12 29 2 *', 'Europe/Berlin'), Date.parse('2026-11-24T00:00:00Z'), 1),
        ),
      ).toEqual(['2028-02-29T11:00:00.000Z']);
    });

    it('should handle leap days and L', () => {
      expect(
        iso(nextInstants(compileCron('0 0 0 29 2 *', 'UTC'), Date.parse('2026-03-01T00:00:00Z'), 1)),
      ).toEqual(['2028-02-29T00:00:00.000Z']);
      expect(
        iso(nextInstants(compileCron('0 0 0 L * *', 'UTC'), Date.parse('2028-02-01T00:00:00Z'), 1)),
      ).toEqual(['2028-02-29T00:00:00.000Z']);
    });
  });
});

describe('the next-instant memo of a compiled cron spec', () => {
  const cases: Array<[string, string, string]> = [
    ['0 30 2 * * *', 'America/New_York', '2026-03-08T00:00:00Z'],
    ['0 30 1 * * *', 'America/New_York', '2026-11-01T00:00:00Z'],
    ['0 */20 1-3 * * *', 'Europe/Berlin', '2026-10-25T00:00:00Z'],
    ['0 15 2 * * *', 'Australia/Lord_Howe', '2026-04-05T00:00:00Z'],
    ['*/7 * * * * *', 'UTC', '2026-12-07T20:00:00Z'],
    ['0 0 0 1 * *', 'UTC', '2026-12-01T00:00:00Z'],
    ['0 0 12 * * MON', 'Asia/Kolkata', '2026-12-01T00:00:00Z'],
  ];

  it.each(cases)(
    '%s in %s: what the memo answers is what the spec answers, for any order of questions',
    (spec, zone, from) => {
      const raw = cronNext(spec, zone);
      let computed = 0;
      const memo = new NextMemo((t) => (computed++, raw(t)));
      const rand = seededRandom(spec.length * 7919 + zone.length);
      const start = Date.parse(from);
      let t = start;
      const asked = 1500;
      for (let i = 0; i < asked; i++) {
        // Mostly near the last question (arming, firing), sometimes after the answer, sometimes anywhere in 3 days.
        const r = rand();
        if (r < 0.4) t += Math.floor(rand() * 5000);
        else if (r < 0.7) t = memo.nextAfter(t) ?? t;
        else t = start + Math.floor(rand() * 3 * 86_400_000);
        expect(memo.nextAfter(t), `${spec} ${zone} after ${new Date(t).toISOString()}`).toBe(raw(t));
      }
      // Remembering saves work only when it answers: fewer computations than questions.
      expect(computed).toBeLessThan(asked * 2);
    },
  );

  it('should fire a spring-forward gap time on the whole second the gap ends, whatever the millisecond asked', () => {
    const next = cronNext('0 30 2 * * *', 'America/New_York');
    // 01:00:00.892 EST on the day 02:00-03:00 is skipped: 02:30 fires at 03:00:00.000 EDT.
    expect(new Date(next(Date.parse('2026-03-08T06:00:00.892Z')) as number).toISOString()).toBe(
      '2026-03-08T07:00:00.000Z',
    );
  });

  it('should compute twice, not 20,000 times, to arm 10,000 entries of one spec one after another', () => {
    let computed = 0;
    const raw = cronNext('0 0 9 * * *', 'Europe/Paris');
    const memo = new NextMemo((t) => (computed++, raw(t)));
    const now = Date.parse('2026-12-07T20:00:00Z');
    for (let i = 0; i < 10_000; i++) {
      // What arming asks (JitteredSchedule.firstDueAfter): the first instant after now, then the one after it.
      const first = memo.nextAfter(now + i) as number;
      memo.nextAfter(first);
    }
    expect(computed).toBe(2);
  });
});
