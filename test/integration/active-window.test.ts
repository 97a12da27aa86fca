import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { groupScheduleFile, iso, second, useSchedulerGroup } from './helpers/scheduler-group.js';
import { brokers } from './helpers/kafka.js';
import { runCli } from './helpers/processes.js';
import { waitFor } from '../kit/wait.js';
import type { EntryStatus } from '../../src/shared/codecs/scheduler-control.js';

describe('StartAt, EndAt and MaxRuns across a scheduler restart', () => {
  const sg = useSchedulerGroup();

  it('should fire a limited entry MaxRuns times and a windowed one in its window only, then report both ended', async () => {
    const every = (Id: string, extra: object = {}) => ({
      ...sg.entries(1)[0]!,
      Id,
      Misfire: 'fire-all',
      ...extra,
    });
    // Goes on firing: the witness that the scheduler runs on after the other two stopped.
    const ticker = every('ticker');
    const file = await groupScheduleFile([ticker]);
    const instants = (id: string) =>
      sg
        .tasks()
        .filter((t) => t.scheduleId === id)
        .map((t) => Date.parse(t.scheduledFor));

    const a = sg.scheduler(file);
    await waitFor(() => instants('ticker').length > 0, { timeoutMs: 60_000, what: 'a firing' });
    // Added while a fires (hot reload), so the window starts with a running scheduler, whatever its start-up took.
    const start = second(Date.now()) + 3000;
    const end = start + 5000;
    await writeFile(
      file,
      JSON.stringify([
        ticker,
        every('limited', { MaxRuns: 8 }),
        every('windowed', { StartAt: iso(start), EndAt: iso(end) }),
      ]),
    );
    // Restarted inside the window, with runs of limited left: both carry over to the next instance.
    await waitFor(() => instants('windowed').length >= 2, {
      timeoutMs: 30_000,
      what: 'two runs of windowed',
    });
    a.signal('SIGTERM');
    expect((await a.exited).code).toBe(0);
    const runsBefore = instants('limited').length;
    expect(runsBefore).toBeGreaterThan(0);
    expect(runsBefore).toBeLessThan(8);
    const b = sg.scheduler(file);
    const lastOfBoth = await waitFor(
      () =>
        instants('limited').length >= 8 && instants('windowed').includes(end)
          ? Math.max(...instants('limited'), end)
          : undefined,
      { timeoutMs: 60_000, what: 'limited to reach 8 runs and windowed its EndAt' },
    );
    await waitFor(() => instants('ticker').some((t) => t >= lastOfBoth + 2000), {
      timeoutMs: 30_000,
      what: 'the ticker to fire 2 s after both ended',
    });
    const r = await runCli('taskscheduler', ['status', '--json', '-b', brokers(), '--group', sg.group]);
    expect(r.code, r.output).toBe(0);
    const entries = (JSON.parse(r.stdout) as { entries: EntryStatus[] }).entries;
    b.signal('SIGTERM');
    expect((await b.exited).code).toBe(0);
    await sg.reader().caughtUp(sg.topic);

    expect(sg.duplicates()).toEqual([]);
    expect(instants('limited')).toHaveLength(8);
    // Every second of the window (those of the restart caught up), nothing outside it.
    expect(instants('windowed').sort().map(iso)).toEqual(
      [0, 1, 2, 3, 4, 5].map((s) => iso(start + s * 1000)),
    );
    const byId = new Map(entries.map((e) => [e.id, e]));
    expect(byId.get('limited')).toMatchObject({ state: 'ended', maxRuns: 8, runCount: 8, nextFireTimes: [] });
    expect(byId.get('windowed')).toMatchObject({ state: 'ended', startAt: iso(start), endAt: iso(end) });
    expect(byId.get('ticker')?.state).toBe('enabled');
  });
});
