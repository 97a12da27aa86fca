import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { groupScheduleFile, useSchedulerGroup } from './helpers/scheduler-group.js';
import { startApi } from './helpers/api.js';
import { brokers, uniqueName } from './helpers/kafka.js';
import { runCli, startCli } from './helpers/processes.js';
import { waitFor } from '../kit/wait.js';
import type { EntryStatus } from '../../src/shared/codecs/scheduler-control.js';

const ZONE = 'Europe/Berlin';
const DAY_MS = 86_400_000;

/** The civil date, in ZONE, of `ms`, then `days` days later (`2026-12-25`). */
function dateIn(ms: number, days = 0): string {
  const today = new Intl.DateTimeFormat('en-CA', { timeZone: ZONE }).format(new Date(ms));
  return new Date(Date.parse(`${today}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
}

describe('exclusion calendars in a schedule file', () => {
  const sg = useSchedulerGroup();

  it('should fire nothing of an entry while its calendar excludes today in its zone, honour it in next, and fire after a reload clears it', async () => {
    // Yesterday to tomorrow in Berlin (a DST zone): today whatever the time of day while the test runs.
    const now = Date.now();
    const excluded = `${dateIn(now, -1)}/${dateIn(now, 1)}`;
    const [base] = sg.entries(1);
    const entry = (Id: string, extra: object = {}) => ({ ...base!, Id, TimeZone: ZONE, ...extra });
    // The ticker has no calendar: the witness that the scheduler fires while the other one does not.
    const ticker = entry('ticker');
    const skipped = entry('skipped', { Calendars: ['off'], Misfire: 'fire-all' });
    const file = await groupScheduleFile([]);
    const withCalendar = (dates: string[]) =>
      JSON.stringify({ Calendars: { off: dates }, Schedules: [ticker, skipped] });
    await writeFile(file, withCalendar([excluded]));
    const fired = (id: string) => sg.tasks().filter((t) => t.scheduleId === id);

    // next, offline: the first instant is the first second after the excluded range, in Berlin.
    const next = await runCli('taskscheduler', ['next', '-s', file, '--id', 'skipped', '-n', '2']);
    expect(next.code, next.output).toBe(0);
    const lines = next.stdout.trim().split('\n');
    expect(lines[0]).toContain('(except off)');
    expect(lines[1]).toMatch(new RegExp(`^  ${dateIn(now, 2)} 00:00:00 (CET|CEST|GMT\\+1|GMT\\+2) `));
    expect(lines[2]).toMatch(new RegExp(`^  ${dateIn(now, 2)} 00:00:01 (CET|CEST|GMT\\+1|GMT\\+2) `));

    const a = sg.scheduler(file);
    // Five seconds of the ticker: five seconds in which skipped would have fired, were its calendar ignored.
    const firstTick = await waitFor(() => fired('ticker')[0], {
      timeoutMs: 60_000,
      what: 'the ticker to fire',
    });
    await waitFor(() => fired('ticker').length >= 6, { timeoutMs: 30_000, what: 'six ticks' });
    expect(fired('skipped')).toEqual([]);

    const status = await runCli('taskscheduler', ['status', '--json', '-b', brokers(), '--group', sg.group]);
    expect(status.code, status.output).toBe(0);
    const entries = (JSON.parse(status.stdout) as { entries: EntryStatus[] }).entries;
    const shown = entries.find((e) => e.id === 'skipped');
    expect(shown).toMatchObject({ state: 'enabled', calendars: ['off'] });
    expect(shown?.nextFireTimes[0]).toBe(lines[1]?.trim().split(/\s+/).at(-1));

    // The calendar no longer holds today: the reload arms skipped again, from now (nothing excluded is caught up).
    const reloadedAt = Date.now();
    await writeFile(file, withCalendar(['2000-01-01']));
    await waitFor(() => fired('skipped').length >= 2, {
      timeoutMs: 30_000,
      what: 'skipped to fire after the reload',
    });
    a.signal('SIGTERM');
    expect((await a.exited).code).toBe(0);
    await sg.reader().caughtUp(sg.topic);
    expect(sg.duplicates()).toEqual([]);
    // Its first fire is one of after the reload was written (to the second), not one caught up from before.
    const firstSkipped = Math.min(...fired('skipped').map((t) => Date.parse(t.scheduledFor)));
    expect(firstSkipped).toBeGreaterThanOrEqual(Math.floor(reloadedAt / 1000) * 1000);
    expect(Date.parse(firstTick.scheduledFor)).toBeLessThan(firstSkipped);
  });
});

describe('exclusion calendars of the HTTP API', () => {
  const sg = useSchedulerGroup();

  it('should refuse an unknown calendar, skip the dates of a known one in next and in firing, and follow its changes', async () => {
    const now = Date.now();
    const name = uniqueName('off');
    const api = await startApi(['--group', sg.group, '--topic', sg.topic]);
    const task = (id: string, extra: object = {}) =>
      api.call('POST', '/api/v1/tasks', {
        id: `${sg.group}-${id}`,
        processor: 'NoopProcessor',
        schedule: { cron: '* * * * * *' },
        timeZone: ZONE,
        misfire: 'fire-all',
        ...extra,
      });
    const unknown = await task('skipped', { calendars: [name] });
    expect(unknown.status, unknown.text).toBe(400);
    expect(unknown.body).toMatchObject({ errors: [{ pointer: '/calendars/0' }] });

    const put = await api.call('PUT', `/api/v1/calendars/${name}`, {
      dates: [`${dateIn(now, -1)}/${dateIn(now, 1)}`],
      description: 'today in Berlin',
    });
    expect(put.status, put.text).toBe(201);
    const bad = await api.call('PUT', `/api/v1/calendars/${name}`, { dates: ['2026-02-30'] });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ errors: [{ pointer: '/dates/0' }] });
    expect((await task('skipped', { calendars: [name] })).status).toBe(201);
    expect((await task('ticker')).status).toBe(201);
    const next = await api.call<{ items: Array<{ local: string }> }>(
      'GET',
      `/api/v1/tasks/${sg.group}-skipped/next?count=1`,
    );
    expect(next.body.items[0]?.local).toMatch(new RegExp(`^${dateIn(now, 2)} 00:00:00 `));

    const s = startCli('taskscheduler', ['-b', brokers(), '-s', 'none', '--group', sg.group]);
    const fired = (id: string) => sg.tasks().filter((t) => t.scheduleId === `${sg.group}-${id}`);
    await waitFor(() => fired('ticker').length >= 6, {
      timeoutMs: 60_000,
      what: () => `six ticks\n${s.output.slice(-2000)}`,
    });
    expect(fired('skipped')).toEqual([]);

    const inUse = await api.call('DELETE', `/api/v1/calendars/${name}`);
    expect(inUse.status).toBe(409);
    expect(inUse.text).toContain(`${sg.group}-skipped`);
    // The calendar no longer holds today: the scheduler re-arms the task from the topic, without a restart.
    const changedAt = Date.now();
    expect((await api.call('PUT', `/api/v1/calendars/${name}`, { dates: ['2000-01-01'] })).status).toBe(200);
    await waitFor(() => fired('skipped').length >= 2, {
      timeoutMs: 30_000,
      what: () => `skipped to fire after the change\n${s.output.slice(-2000)}`,
    });
    expect(Math.min(...fired('skipped').map((t) => Date.parse(t.scheduledFor)))).toBeGreaterThanOrEqual(
      Math.floor(changedAt / 1000) * 1000,
    );
    const listed = await api.call<{ items: Array<{ name: string }> }>('GET', '/api/v1/calendars');
    expect(listed.body.items.map((c) => c.name)).toContain(name);
  });
});
