import { describe, expect, it } from 'vitest';
import { compileCron, validateCronSpec } from '../../src/shared/cron.js';
import { nextInstants } from '../../src/shared/schedule/compiled.js';

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
