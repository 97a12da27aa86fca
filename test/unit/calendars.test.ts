import { describe, expect, it } from 'vitest';
import { catchUp } from '../../src/scheduler/catch-up.js';
import { EntryCatalog } from '../../src/scheduler/entry-catalog.js';
import { EntryStates } from '../../src/scheduler/entry-states.js';
import { timesOf } from '../../src/scheduler/fire-loop.js';
import { overdueOnce } from '../../src/scheduler/misfire.js';
import { describeNextFires, formatInZone } from '../../src/scheduler/next-command.js';
import { specHash, specHashOf } from '../../src/shared/codecs/scheduler-state.js';
import { parseScheduleText } from '../../src/shared/config/load.js';
import { silentLogger } from '../../src/shared/logger.js';
import {
  dayNumber,
  dayStart,
  excludedDaysOf,
  excluding,
  MAX_EXCLUDED_SKIPS,
  parseDateItem,
} from '../../src/shared/schedule/calendar.js';
import type { CompiledSchedule } from '../../src/shared/schedule/compiled.js';
import { nextInstants } from '../../src/shared/schedule/compiled.js';
import { compileSpec } from '../../src/shared/schedule/spec.js';
import type { ScheduleEntry } from '../../src/shared/config/schema.js';
import { calendarRecord, CalendarBook, CALENDARS_TOPIC } from '../../src/shared/tasks/calendars.js';
import { definitionRecord } from '../../src/shared/tasks/definition.js';
import { SCHEDULER_STATE_TOPIC } from '../../src/shared/codecs/scheduler-state.js';
import { ApiTaskSource } from '../../src/scheduler/api-tasks.js';
import { CalendarFollower } from '../../src/scheduler/calendar-follower.js';
import { MemoryKafka } from './helpers/memory-kafka.js';
import { settle } from './helpers/settle.js';
import { AUDIT_TOPIC } from '../../src/shared/codecs/task-event.js';
import { apiAppPerTest, operatorAndViewer } from './helpers/api-app.js';
import { cronEntry, scheduleFileProblems, taskDefinition } from './helpers/entries.js';
import { FakeClock } from './helpers/fake-clock.js';
import { recordingLoop } from './helpers/recording-loop.js';

const iso = (ms: number): string => new Date(ms).toISOString();
const at = (text: string): number => Date.parse(text);
const holidays = (...dates: string[]) => excludedDaysOf([{ name: 'holidays', dates }]);

/** `spec` in `zone` without the dates of `dates`, its next `n` instants after `after` as ISO texts. */
function nextOf(cron: string, zone: string, dates: string[], after: string, n: number): string[] {
  const s = excluding(compileSpec({ kind: 'cron', cron }, zone), holidays(...dates));
  return nextInstants(s, at(after), n).map(iso);
}

/** A schedule entry with calendar `holidays` of `dates`, as the loader makes it. */
function withHolidays(e: ScheduleEntry, dates: string[]): ScheduleEntry {
  return { ...e, calendars: ['holidays'], excluded: holidays(...dates) };
}

describe('exclusion calendars', () => {
  describe('when reading dates and ranges', () => {
    it('should take dates and inclusive ranges, and say what is wrong with the others', () => {
      expect(parseDateItem('2026-12-25')).toEqual([dayNumber('2026-12-25'), dayNumber('2026-12-25')]);
      expect(parseDateItem('2026-12-24/2026-12-26')).toEqual([
        dayNumber('2026-12-24'),
        dayNumber('2026-12-26'),
      ]);
      expect(parseDateItem('2026-02-30')).toBe(
        'is not a date (2026-12-25) nor a range (2026-12-24/2026-12-26)',
      );
      expect(parseDateItem('25/12/2026')).toMatch(/is not a date/);
      expect(parseDateItem('2026-12-26/2026-12-24')).toBe('ends before it starts');
    });

    it('should merge overlapping and adjacent dates of several calendars into ranges', () => {
      const days = excludedDaysOf([
        { name: 'a', dates: ['2026-12-25', '2026-12-24/2026-12-26', '2027-01-01'] },
        { name: 'b', dates: ['2026-12-27', '2026-12-31'] },
      ]);
      expect(days.names).toEqual(['a', 'b']);
      expect(days.ranges).toEqual([
        dayNumber('2026-12-24'),
        dayNumber('2026-12-27'),
        dayNumber('2026-12-31'),
        dayNumber('2027-01-01'),
      ]);
    });
  });

  describe("when a schedule's zone has DST", () => {
    it('should skip the whole local day of a spring-forward date (23 hours) in Europe/Berlin', () => {
      // 2026-03-29 in Berlin: 00:00 CET (23:00Z the day before) to 00:00 CEST (22:00Z).
      expect(dayStart(dayNumber('2026-03-29')!, 'Europe/Berlin')).toBe(at('2026-03-28T23:00:00Z'));
      expect(dayStart(dayNumber('2026-03-30')!, 'Europe/Berlin')).toBe(at('2026-03-29T22:00:00Z'));
      expect(nextOf('0 0 * * * *', 'Europe/Berlin', ['2026-03-29'], '2026-03-28T21:30:00Z', 3)).toEqual([
        '2026-03-28T22:00:00.000Z',
        '2026-03-29T22:00:00.000Z',
        '2026-03-29T23:00:00.000Z',
      ]);
    });

    it('should skip the whole local day of a fall-back date (25 hours), its repeated hour too', () => {
      // 2026-10-25 in Berlin: 00:00 CEST (22:00Z the day before) to 00:00 CET (23:00Z).
      expect(nextOf('0 30 * * * *', 'Europe/Berlin', ['2026-10-25'], '2026-10-24T21:00:00Z', 2)).toEqual([
        '2026-10-24T21:30:00.000Z',
        '2026-10-25T23:30:00.000Z',
      ]);
    });

    it('should read one calendar in the zone of each schedule that names it', () => {
      const [utc] = nextOf('0 0 * * * *', 'UTC', ['2026-12-25'], '2026-12-24T23:30:00Z', 1);
      const [ny] = nextOf('0 0 * * * *', 'America/New_York', ['2026-12-25'], '2026-12-24T23:30:00Z', 1);
      const [tokyo] = nextOf('0 0 * * * *', 'Asia/Tokyo', ['2026-12-25'], '2026-12-24T10:30:00Z', 1);
      expect(utc).toBe('2026-12-26T00:00:00.000Z');
      // 00:00Z on the 25th is 19:00 on the 24th in New York: not excluded there; its 25th is 05:00Z to 05:00Z.
      expect(ny).toBe('2026-12-25T00:00:00.000Z');
      expect(nextOf('0 0 * * * *', 'America/New_York', ['2026-12-25'], '2026-12-25T04:30:00Z', 1)).toEqual([
        '2026-12-26T05:00:00.000Z',
      ]);
      // 15:00Z on the 24th is midnight of the 25th in Tokyo.
      expect(tokyo).toBe('2026-12-24T11:00:00.000Z');
      expect(nextOf('0 0 * * * *', 'Asia/Tokyo', ['2026-12-25'], '2026-12-24T14:30:00Z', 1)).toEqual([
        '2026-12-25T15:00:00.000Z',
      ]);
    });
  });

  describe('when many instants in a row are excluded', () => {
    /** `inner`, counting the calls made to it. */
    function counting(inner: CompiledSchedule): { s: CompiledSchedule; calls: () => number } {
      let calls = 0;
      return {
        s: {
          spec: inner.spec,
          zone: inner.zone,
          nextAfter: (t) => {
            calls++;
            return inner.nextAfter(t);
          },
        },
        calls: () => calls,
      };
    }

    it('should step over an excluded range of a schedule firing every second in a few steps', () => {
      const { s, calls } = counting(
        compileSpec({ kind: 'every', everyMs: 1000, anchorMs: 0 }, 'Europe/Berlin'),
      );
      const skipping = excluding(s, holidays('2026-12-24/2026-12-26', '2026-12-27'));
      expect(iso(skipping.nextAfter(at('2026-12-23T22:59:58.500Z'))!)).toBe('2026-12-23T22:59:59.000Z');
      expect(iso(skipping.nextAfter(at('2026-12-23T22:59:59Z'))!)).toBe('2026-12-27T23:00:00.000Z');
      expect(calls()).toBeLessThan(6);
    });

    it(`should give up after ${MAX_EXCLUDED_SKIPS} excluded instants: no next instant`, () => {
      // Every 48 h from the epoch: the even days at 00:00Z; a calendar holding n of them in a row (not adjacent).
      const first = dayNumber('2026-01-01')!;
      expect(first % 2).toBe(0);
      const evenDays = (n: number) =>
        Array.from({ length: n }, (_, i) =>
          new Date((first + 2 * i) * 86_400_000).toISOString().slice(0, 10),
        );
      const every48h = compileSpec({ kind: 'every', everyMs: 48 * 3_600_000, anchorMs: 0 }, 'UTC');
      const after = first * 86_400_000 - 1;
      const within = excluding(every48h, holidays(...evenDays(MAX_EXCLUDED_SKIPS)));
      expect(within.nextAfter(after)).toBe((first + 2 * MAX_EXCLUDED_SKIPS) * 86_400_000);
      const beyond = excluding(every48h, holidays(...evenDays(MAX_EXCLUDED_SKIPS + 1)));
      expect(beyond.nextAfter(after)).toBeUndefined();
      // The preview and the fire loop see no next fire; they do not loop.
      const e = withHolidays(
        cronEntry('y', '', { spec: { kind: 'every', everyMs: 48 * 3_600_000, anchorMs: 0 } }),
        [...evenDays(MAX_EXCLUDED_SKIPS + 1)],
      );
      expect(timesOf(e).nextFires(after, 3)).toEqual([]);
      const clock = new FakeClock(after);
      const { loop } = recordingLoop(clock);
      loop.add(e);
      expect(loop.size).toBe(0);
    });
  });

  describe('when the scheduler fires an entry with a calendar (fake clock)', () => {
    const dayOff = ['2026-11-23'];
    const every10 = withHolidays(cronEntry('a', '*/10 * * * * *'), dayOff);

    it('should fire nothing on the excluded date, and go on the day after', () => {
      const clock = new FakeClock(at('2026-11-22T23:59:35Z'));
      const { loop, fires } = recordingLoop(clock);
      loop.add(every10);
      loop.start();
      clock.advance(60_000);
      expect(fires.map((f) => iso(f.scheduledFor))).toEqual([
        '2026-11-22T23:59:40.000Z',
        '2026-11-22T23:59:50.000Z',
      ]);
      // Armed for the first instant after the excluded date all along.
      clock.set(at('2026-11-23T23:59:45Z'));
      clock.advance(30_000);
      expect(fires.map((f) => iso(f.scheduledFor)).slice(2)).toEqual([
        '2026-11-24T00:00:00.000Z',
        '2026-11-24T00:00:10.000Z',
      ]);
    });

    it('should catch up no excluded instant, whatever the misfire policy', () => {
      const lastFiredMs = at('2026-11-22T23:59:30Z');
      const now = at('2026-11-23T00:01:00Z');
      const caught = (e: ScheduleEntry): string[] => {
        const states = new EntryStates('g');
        states.set('a', { lastFiredMs, specHash: specHashOf(e), paused: false, runs: 0 });
        const { missed } = catchUp([e], states, now, {
          logger: silentLogger,
          metrics: undefined,
          arm: () => undefined,
        });
        return missed.map((f) => iso(f.scheduledFor));
      };
      expect(caught({ ...every10, misfire: 'fire-all' })).toEqual([
        '2026-11-22T23:59:40.000Z',
        '2026-11-22T23:59:50.000Z',
      ]);
      expect(caught({ ...every10, misfire: 'fire-once' })).toEqual(['2026-11-22T23:59:50.000Z']);
      expect(caught(withHolidays({ ...every10, misfire: 'fire-all' }, ['2026-11-22/2026-11-23']))).toEqual(
        [],
      );
    });

    it('should never fire a one-shot on an excluded date, however overdue', () => {
      const once = cronEntry('o', '', { spec: { kind: 'once', runAt: at('2026-11-23T09:00:00Z') } });
      expect(overdueOnce(withHolidays(once, dayOff), undefined, at('2026-11-24T00:00:00Z'))).toBeUndefined();
      expect(overdueOnce(withHolidays(once, ['2026-11-24']), undefined, at('2026-11-24T00:00:00Z'))).toBe(
        at('2026-11-23T09:00:00Z'),
      );
    });
  });

  describe('when a schedule file has a Calendars section', () => {
    const entry = (extra: string) =>
      `{"Id":"a","Cron":"0 0 9 * * *","TimeZone":"Europe/Berlin","Topic":"taskTopic",${extra}"TaskMessageTemplate":{"TaskProcessorName":"p"}}`;
    const problems = (text: string): string[] => scheduleFileProblems(text, 'f.json');

    it('should resolve the calendars an entry names, and skip their dates in next', () => {
      const [e, plain] = parseScheduleText(
        'f.json',
        `{"Calendars":{"holidays":["2026-12-25","2026-12-31/2027-01-01"],"other":[]},
          "Schedules":[${entry('"Calendars":["holidays"],')},${entry('').replace('"a"', '"b"')}]}`,
      );
      expect(e).toMatchObject({ id: 'a', calendars: ['holidays'], excluded: { names: ['holidays'] } });
      expect(plain?.excluded).toBeUndefined();
      expect(plain?.calendars).toBeUndefined();
      expect(describeNextFires([e!], at('2026-12-24T12:00:00Z'), 3).split('\n')).toEqual([
        'a: "0 0 9 * * *" Europe/Berlin (except holidays) -> taskTopic p',
        // The zone's short name is ICU's (CET, or GMT+1 with other data): the instants are what is checked.
        ...['2026-12-26', '2026-12-27', '2026-12-28'].map((d) => {
          const t = at(`${d}T08:00:00Z`);
          return `  ${formatInZone(t, 'Europe/Berlin').padEnd(26)} ${iso(t)}`;
        }),
      ]);
    });

    it('should still load a file that is a bare array of entries', () => {
      expect(parseScheduleText('f.json', `[${entry('')}]`)).toHaveLength(1);
    });

    it('should name an unknown calendar, a bad date and a bad section on one line each', () => {
      expect(problems(`{"Schedules":[${entry('"Calendars":["holidays"],')}]}`)).toEqual([
        'f.json: [0] (Id "a") Calendars: "holidays" is not a calendar of this file (it has no Calendars section)',
      ]);
      expect(problems(`[${entry('"Calendars":["holidays"],')}]`)).toEqual([
        'f.json: [0] (Id "a") Calendars: "holidays" is not a calendar of this file (it has no Calendars section)',
      ]);
      expect(
        problems(
          `{"Calendars":{"days":["2026-13-01","2026-12-02/2026-12-01"]},"Schedules":[${entry('"Calendars":["day"],')}]}`,
        ),
      ).toEqual([
        'f.json: Calendars.days.0: "2026-13-01" is not a date (2026-12-25) nor a range (2026-12-24/2026-12-26)',
        'f.json: Calendars.days.1: "2026-12-02/2026-12-01" ends before it starts',
        'f.json: [0] (Id "a") Calendars: "day" is not a calendar of this file (its Calendars are days)',
      ]);
      expect(problems(`{"Calendar":{},"Schedules":[]}`)).toEqual(['f.json: Calendar: is not a known field']);
      expect(problems(`"x"`)).toEqual([
        'f.json: must be an array of entries, or an object with Schedules (and Calendars)',
      ]);
    });

    it('should make an entry changed when its calendar changes (a reload re-arms it), and hash its dates', () => {
      const load = (dates: string) =>
        parseScheduleText(
          'f.json',
          `{"Calendars":{"h":[${dates}]},"Schedules":[${entry('"Calendars":["h"],')}]}`,
        );
      const catalog = new EntryCatalog('g', load('"2026-12-25"'));
      expect(catalog.replace(load('"2026-12-25"'))).toEqual({ added: [], changed: [], removed: [] });
      expect(catalog.replace(load('"2026-12-26"'))).toEqual({ added: [], changed: ['a'], removed: [] });
      expect(specHash(load('"2026-12-25"')[0]!)).not.toBe(specHash(load('"2026-12-26"')[0]!));
      // An entry without calendars hashes as before calendars existed.
      const [plain] = parseScheduleText('f.json', `[${entry('')}]`);
      expect(specHash(plain!)).toBe(specHash({ ...plain!, calendars: [] }));
    });
  });

  describe('when taskapi keeps calendars (in memory Kafka)', () => {
    const apps = apiAppPerTest();

    it('should store, list, refuse bad ones and unknown names, honour them in next, and refuse to delete one in use', async () => {
      const api = await apps.open();
      const [op, viewer] = await operatorAndViewer(api);
      const call = (
        token: string,
        method: 'GET' | 'PUT' | 'POST' | 'DELETE',
        url: string,
        payload?: object,
      ) =>
        api.app.inject({
          method,
          url,
          headers: { authorization: `Bearer ${token}` },
          ...(payload ? { payload } : {}),
        });

      const task = {
        id: 'xmas',
        processor: 'p',
        schedule: { cron: '0 0 9 * * *' },
        timeZone: 'Europe/Berlin',
      };
      const unknown = await call(op, 'POST', '/api/v1/tasks', { ...task, calendars: ['holidays'] });
      expect(unknown.statusCode).toBe(400);
      expect(unknown.json()).toMatchObject({
        errors: [
          {
            pointer: '/calendars/0',
            detail: '"holidays" is not a calendar (PUT /api/v1/calendars/holidays first)',
          },
        ],
      });
      expect(
        (await call(viewer, 'PUT', '/api/v1/calendars/holidays', { dates: ['2026-12-25'] })).statusCode,
      ).toBe(403);
      const bad = await call(op, 'PUT', '/api/v1/calendars/holidays', {
        dates: ['2026-12-25', '12/26'],
        x: 1,
      });
      expect(bad.statusCode).toBe(400);
      expect(bad.json()).toMatchObject({
        errors: [
          { pointer: '/x', detail: 'is not a known field' },
          {
            pointer: '/dates/1',
            detail: '"12/26" is not a date (2026-12-25) nor a range (2026-12-24/2026-12-26)',
          },
        ],
      });
      const created = await call(op, 'PUT', '/api/v1/calendars/holidays', {
        dates: ['2099-12-24/2099-12-26'],
        description: 'Christmas',
      });
      expect(created.statusCode).toBe(201);
      expect(created.json()).toMatchObject({
        name: 'holidays',
        dates: ['2099-12-24/2099-12-26'],
        updatedBy: 'op',
      });
      expect((await call(op, 'POST', '/api/v1/tasks', { ...task, calendars: ['holidays'] })).statusCode).toBe(
        201,
      );
      expect((await call(viewer, 'GET', '/api/v1/calendars')).json()).toMatchObject({
        items: [{ name: 'holidays' }],
      });
      expect((await call(viewer, 'GET', '/api/v1/calendars/nope')).statusCode).toBe(404);

      // next skips the excluded dates, in the task's zone.
      const after = await call(op, 'PUT', '/api/v1/calendars/holidays', {
        dates: [`${new Date().toISOString().slice(0, 4)}-01-01/2098-12-31`],
      });
      expect(after.statusCode).toBe(200);
      const next = await call(viewer, 'GET', '/api/v1/tasks/xmas/next?count=2');
      expect(next.json()).toMatchObject({
        items: [
          { utc: '2099-01-01T08:00:00.000Z', local: expect.stringMatching(/^2099-01-01 09:00:00 /) },
          { utc: '2099-01-02T08:00:00.000Z', local: expect.stringMatching(/^2099-01-02 09:00:00 /) },
        ],
      });

      const inUse = await call(op, 'DELETE', '/api/v1/calendars/holidays');
      expect(inUse.statusCode).toBe(409);
      expect(inUse.json<{ detail: string }>().detail).toContain('xmas');
      expect((await call(op, 'PUT', '/api/v1/tasks/xmas', task)).statusCode).toBe(200);
      expect((await call(op, 'DELETE', '/api/v1/calendars/holidays')).statusCode).toBe(204);
      expect((await call(viewer, 'GET', '/api/v1/calendars')).json()).toEqual({ items: [] });

      // Stored as the topic's records (a tombstone last), each change audited.
      const records = api.kafka.topics.get(CALENDARS_TOPIC) ?? [];
      expect(records.map((r) => r.value === null)).toEqual([false, false, true]);
      const audits = (api.kafka.topics.get(AUDIT_TOPIC) ?? [])
        .map((r) => JSON.parse(String(r.value)) as { action?: string; calendar?: string })
        .filter((e) => e.calendar === 'holidays')
        .map((e) => e.action);
      expect(audits).toEqual(['calendar.changed', 'calendar.changed', 'calendar.deleted']);
      // The OpenAPI document has the routes.
      const doc = (await api.app.inject({ method: 'GET', url: '/api/openapi.json' })).json<{
        paths: object;
      }>();
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining(['/api/v1/calendars', '/api/v1/calendars/{name}']),
      );
    });
  });

  describe('when a scheduler folds the calendars topic', () => {
    it('should tell each change, and resolve a name it does not know as excluding nothing', () => {
      const book = new CalendarBook(silentLogger);
      const changed: string[] = [];
      book.onChange = (n) => changed.push(n);
      const record = (name: string, value: string | null, offset: number) =>
        ({
          topic: CALENDARS_TOPIC,
          partition: 0,
          offset: String(offset),
          key: Buffer.from(name),
          value: value === null ? null : Buffer.from(value),
          headers: {},
          timestamp: '0',
        }) as never;
      const rec = (dates: string[]) => JSON.stringify({ v: 1, name: 'h', dates, updatedAt: 'x' });
      expect(book.fold(record('h', rec(['2026-12-25']), 0))).toBe('changed');
      const first = book.excludedOf(['h', 'gone']);
      expect(first?.ranges).toEqual([dayNumber('2026-12-25'), dayNumber('2026-12-25')]);
      expect(book.excludedOf(['h', 'gone'])).toBe(first);
      expect(
        book.fold(
          record(
            'h',
            JSON.stringify({ v: 1, name: 'h', dates: ['2026-12-25'], updatedAt: 'y', later: 1 }),
            1,
          ),
        ),
      ).toBe('same');
      expect(book.fold(record('h', rec(['nope']), 2))).toBe('ignored');
      expect(book.fold(record('h', rec(['2026-12-26']), 3))).toBe('changed');
      expect(book.excludedOf(['h', 'gone'])?.ranges).toEqual([
        dayNumber('2026-12-26'),
        dayNumber('2026-12-26'),
      ]);
      expect(book.fold(record('h', null, 4))).toBe('deleted');
      expect(book.excludedOf(['h'])?.ranges).toEqual([]);
      expect(changed).toEqual(['h', 'h', 'h']);
    });
  });

  describe('when a scheduler follows taskmanager.calendars beside its API tasks (in memory Kafka)', () => {
    it('should make the held tasks naming a changed calendar again with its new dates, and no others', async () => {
      const clock = new FakeClock(at('2026-12-01T00:00:00Z'));
      const kafka = new MemoryKafka(clock);
      kafka.partitions.set(SCHEDULER_STATE_TOPIC, 4);
      const calendar = (dates: string[]) =>
        calendarRecord({ v: 1, name: 'h', dates, updatedAt: '2026-12-01T00:00:00Z' });
      kafka.write([calendar(['2026-12-25'])]);
      const created = '2026-12-01T00:00:00Z';
      kafka.write([
        definitionRecord(taskDefinition('named', created, { group: 'g', calendars: ['h'] })),
        definitionRecord(taskDefinition('plain', created, { group: 'g' })),
      ]);
      await settle();
      const puts: ScheduleEntry[] = [];
      const sink = { put: (e: ScheduleEntry) => void puts.push(e), remove: () => undefined };
      // Wired as taskscheduler wires them (scheduler/cli.ts).
      const source = new ApiTaskSource(kafka.client(), 'g', silentLogger, sink, clock, (names) =>
        calendars.book.excludedOf(names),
      );
      const calendars = new CalendarFollower(kafka.client(), silentLogger, (n) => source.calendarChanged(n));
      await calendars.start();
      await source.start();
      await source.gained([0, 1, 2, 3]);
      const shown = () => puts.map((e) => [e.id, e.excluded?.ranges ?? null]);
      const day = (d: string) => [dayNumber(d), dayNumber(d)];
      expect(shown().sort()).toEqual([
        ['named', day('2026-12-25')],
        ['plain', null],
      ]);
      puts.length = 0;
      kafka.write([calendar(['2026-12-26'])]);
      await settle();
      expect(shown()).toEqual([['named', day('2026-12-26')]]);
      // The same dates again (another description, say): nothing to arm again.
      kafka.write([calendar(['2026-12-26'])]);
      await settle();
      expect(shown()).toHaveLength(1);
      // Deleted while named: the task excludes nothing (taskapi refuses this delete; a scheduler copes).
      kafka.write([{ topic: CALENDARS_TOPIC, key: 'h', value: null }]);
      await settle();
      expect(shown().at(-1)).toEqual(['named', []]);
      await source.stop();
      await calendars.stop();
    });
  });
});
