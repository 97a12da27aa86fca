import { describe, expect, it } from 'vitest';
import { parseTaskInput } from '../../src/api/task-input.js';
import { parseScheduleText } from '../../src/shared/config/load.js';
import { ConfigError } from '../../src/shared/errors.js';
import { fileKey, SCHEDULE_KINDS } from '../../src/shared/schedule/model.js';
import { parseDefinition, TASKS_TOPIC } from '../../src/shared/tasks/definition.js';
import { apiAppPerTest } from './helpers/api-app.js';

/** A schedule under canonical names: the file writes the same fields PascalCase, HTTP and records nest the kind. */
type Schedule = { runAt?: unknown; cron?: unknown; every?: unknown; timeZone?: unknown };

const CREATED_AT = '2026-11-22T10:00:00.250Z';

/** Through the file: the problems' paths (Every, Cron, …), or the spec it loads. */
function viaFile(s: Schedule): { paths: string[] } | { spec: object } {
  const entry: Record<string, unknown> = {
    Id: 'a',
    Topic: 'orders',
    TaskMessageTemplate: { TaskProcessorName: 'p' },
  };
  for (const [k, v] of Object.entries(s)) entry[fileKey(k)] = v;
  try {
    const [e] = parseScheduleText('s.json', JSON.stringify([entry]));
    return { spec: e!.spec };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { paths: err.problems.map((p) => p.path) };
  }
}

/** The nested `schedule` of HTTP bodies and records: the kinds without the zone. */
const kindsOf = ({ timeZone: _zone, ...kinds }: Schedule) => kinds;

/** Through a `taskmanager.tasks` record: its problem line, or the definition's spec. */
function viaRecord(s: Schedule): { problem: string } | { ok: true } {
  const parsed = parseDefinition(
    Buffer.from(
      JSON.stringify({
        v: 1,
        id: 'a',
        name: 'a',
        processor: 'p',
        topic: 'orders',
        schedule: kindsOf(s),
        timeZone: s.timeZone ?? 'UTC',
        misfire: 'fire-once',
        enabled: true,
        group: 'taskscheduler-api',
        createdAt: CREATED_AT,
        updatedAt: CREATED_AT,
      }),
    ),
  );
  return 'problem' in parsed ? { problem: parsed.problem } : { ok: true };
}

/** Through taskapi's body parser: the pointers of its field errors. */
function viaHttp(s: Schedule): { pointers: string[] } | { ok: true } {
  const body = {
    processor: 'p',
    schedule: kindsOf(s),
    ...(s.timeZone === undefined ? {} : { timeZone: s.timeZone }),
  };
  const r = parseTaskInput(body);
  return r.ok ? { ok: true } : { pointers: r.errors.map((e) => e.pointer) };
}

/** Each case: a schedule, and the field all three doors must name when refusing it (undefined: accepted). */
const CASES: Array<[string, Schedule, string | undefined]> = [
  ['a 6-field cron', { cron: '*/5 * * * * *' }, undefined],
  ['a 5-field cron in a zone', { cron: '0 9 * * 1-5', timeZone: 'Europe/Berlin' }, undefined],
  ['a cron macro', { cron: '@daily' }, undefined],
  ['a cron with a second out of range', { cron: '61 * * * * *' }, 'cron'],
  ['a cron of 3 fields', { cron: '* * *' }, 'cron'],
  ['an empty cron', { cron: '' }, 'cron'],
  ['a cron that is not a string', { cron: 5 }, 'cron'],
  ['a cron of null', { cron: null }, 'cron'],
  ['an RFC 3339 instant', { runAt: '2026-12-01T09:00:00+01:00' }, undefined],
  ['an instant on 30 February', { runAt: '2026-02-30T10:00:00Z' }, 'runAt'],
  ['an instant without an offset', { runAt: '2026-12-01T09:00:00' }, 'runAt'],
  ['every 5s', { every: '5s' }, undefined],
  ['every 1m30s', { every: '1m30s' }, undefined],
  ['every 60000 (ms, a number)', { every: 60000 }, undefined],
  ['every "1500" (ms, a string)', { every: '1500' }, undefined],
  ['every 1s, the shortest', { every: '1s' }, undefined],
  ['every 999ms', { every: '999ms' }, 'every'],
  ['every 0s', { every: '0s' }, 'every'],
  ['every "5 s"', { every: '5 s' }, 'every'],
  ['every 1.5 (ms)', { every: 1.5 }, 'every'],
  ['every 87600h (10 years), the longest', { every: '87600h' }, undefined],
  ['every 100000h (11 years)', { every: '100000h' }, 'every'],
  ['every 2400000000h', { every: '2400000000h' }, 'every'],
  ['no kind', {}, 'schedule'],
  ['two kinds', { cron: '* * * * *', every: '5s' }, 'schedule'],
  ['an unknown zone', { cron: '@daily', timeZone: 'Mars/Base' }, 'timeZone'],
];

/** Where each door names a field: the file's key, the record's path, the body's pointer. */
function named(field: string): { file: RegExp; record: RegExp; http: string } {
  if (field === 'schedule') return { file: /^(Cron|Cron, Every)$/, record: /^schedule /, http: '/schedule' };
  if (field === 'timeZone') return { file: /^TimeZone$/, record: /^timeZone /, http: '/timeZone' };
  return {
    file: new RegExp(`^${fileKey(field)}$`),
    record: new RegExp(`^schedule\\.${field} `),
    http: `/schedule/${field}`,
  };
}

describe('when the same schedule comes through the file, a task record and an HTTP body', () => {
  for (const [what, schedule, refusedAt] of CASES)
    it(`should ${refusedAt ? `refuse ${what} at the same field` : `accept ${what}`} through all three`, () => {
      const [file, record, http] = [viaFile(schedule), viaRecord(schedule), viaHttp(schedule)];
      if (refusedAt === undefined) {
        expect([file, record, http]).toEqual([{ spec: expect.any(Object) }, { ok: true }, { ok: true }]);
        return;
      }
      const at = named(refusedAt);
      expect(file).toEqual({ paths: [expect.stringMatching(at.file)] });
      expect(record).toEqual({ problem: expect.stringMatching(at.record) });
      expect(http).toEqual({ pointers: [at.http] });
    });

  it('should say the same about an interval above the maximum, in each door’s form', () => {
    expect(viaFile({ every: '100000h' })).toEqual({ paths: ['Every'] });
    expect(() =>
      parseScheduleText(
        's.json',
        JSON.stringify([
          { Id: 'a', Topic: 't', Every: '100000h', TaskMessageTemplate: { TaskProcessorName: 'p' } },
        ]),
      ),
    ).toThrow('s.json: [0] (Id "a") Every: "100000h" is above the maximum of 87600h (10 years)');
    expect(viaRecord({ every: '100000h' })).toEqual({
      problem: 'schedule.every "100000h" is above the maximum of 87600h (10 years)',
    });
    expect(parseTaskInput({ processor: 'p', schedule: { every: '100000h' } })).toEqual({
      ok: false,
      errors: [{ pointer: '/schedule/every', detail: 'is above the maximum of 87600h (10 years)' }],
    });
  });
});

describe('when taskapi serves its OpenAPI document and takes a task', () => {
  const apps = apiAppPerTest();

  it('should describe the schedule with the model’s kinds and limits, and store what the readers take', async () => {
    const api = await apps.open();
    const doc = (await api.app.inject({ method: 'GET', url: '/api/openapi.json' })).json<{
      paths: Record<
        string,
        Record<string, { requestBody: { content: Record<string, { schema: unknown }> } }>
      >;
    }>();
    type Branch = { required: string[]; properties: Record<string, { description?: string }> };
    const body = doc.paths['/api/v1/tasks']!.post!.requestBody.content['application/json']!.schema as {
      oneOf: Array<{ properties: { schedule?: { oneOf: Branch[] } } }>;
    };
    const schedule = body.oneOf.find((b) => b.properties.schedule)!.properties.schedule!;
    expect(schedule.oneOf.map((b) => b.required[0])).toEqual([...SCHEDULE_KINDS]);
    expect(schedule.oneOf[2]!.properties.every!.description).toMatch(/from 1s to 87600h \(10 years\)/);

    await api.users.addUser('op', 'a-long-enough-password', 'operator', 'test');
    const token = (await api.login('op', 'a-long-enough-password')).body.accessToken as string;
    const post = (schedule: object) =>
      api.app.inject({
        method: 'POST',
        url: '/api/v1/tasks',
        headers: { authorization: `Bearer ${token}` },
        payload: { processor: 'p', schedule },
      });
    const [longest, tooLong] = [await post({ every: '87600h' }), await post({ every: '100000h' })];
    expect([longest.statusCode, tooLong.statusCode]).toEqual([201, 400]);
    const stored = api.kafka.topics.get(TASKS_TOPIC) ?? [];
    expect(stored.map((r) => ('def' in parseDefinition(r.value!) ? 'read' : 'refused'))).toEqual(['read']);
  });
});
