import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { groupScheduleFile, useSchedulerGroup } from './helpers/scheduler-group.js';
import type { Entry } from './helpers/scheduler-group.js';
import { brokers, TopicReader, uniqueName } from './helpers/kafka.js';
import { startCli } from './helpers/processes.js';
import type { RunningCli } from './helpers/processes.js';
import { EVENTS } from './helpers/tasks.js';
import { isRunning } from '../kit/processes.js';
import { waitFor } from '../kit/wait.js';
import { partitionForKey } from '../../src/shared/kafka/index.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';

type Extra = Omit<Partial<Entry>, 'TaskMessageTemplate'> & {
  Overlap?: string;
  TaskMessageTemplate?: { TaskProcessorName: string; Payload?: unknown };
};

/** One run of a schedule as its events tell it: when it started and ended, on which consumer, how it ended. */
interface Run {
  taskId: string;
  pid: number | undefined;
  start: number | undefined;
  end: number | undefined;
  final: StatusEvent | undefined;
}

const FINAL = new Set(['FINISHED', 'CANCELLED', 'SKIPPED']);

describe('overlap policies, with tasks slower than their schedule', () => {
  const sg = useSchedulerGroup();
  let events: TopicReader;
  beforeEach(async () => {
    events = await new TopicReader([{ topic: EVENTS, fromEnd: true }]).start();
  });
  afterEach(async () => {
    await events.stop();
  });

  const entry = (Id: string, extra: Extra = {}): Entry =>
    ({ ...sg.entries(1)[0], Id, Misfire: 'skip', ...extra }) as Entry;
  const consumer = (group: string, ...flags: string[]): RunningCli =>
    startCli('taskconsumer', ['-b', brokers(), '-t', sg.topic, '-g', group, '-c', '10', ...flags]);
  const eventsOf = (id: string): StatusEvent[] =>
    events.values<StatusEvent>(EVENTS, (e) => e.scheduleId === id && e.taskId.startsWith(`${id}@`));
  /** The runs of a schedule fired by this test's group, oldest first. */
  const runs = (id: string): Run[] => {
    const byTask = new Map<string, Run>();
    const fired = new Set(
      sg
        .tasks()
        .filter((t) => t.scheduleId === id)
        .map((t) => t.taskId),
    );
    for (const e of eventsOf(id)) {
      if (!fired.has(e.taskId)) continue;
      let r = byTask.get(e.taskId);
      if (!r)
        byTask.set(
          e.taskId,
          (r = { taskId: e.taskId, pid: undefined, start: undefined, end: undefined, final: undefined }),
        );
      // When the attempt started: on its EXECUTING, or on its final event alone when it was short.
      if (e.status === 'EXECUTING' || e.startedAt !== undefined) {
        r.start = Date.parse(e.startedAt ?? e.at);
        r.pid = e.by.pid;
      }
      if (FINAL.has(e.status)) {
        r.final = e;
        r.end = Date.parse(e.at);
      }
    }
    return [...byTask.values()].sort((a, b) => (a.taskId < b.taskId ? -1 : 1));
  };
  /** Pairs of runs of a schedule that ran at the same time. */
  const overlapping = (rs: Run[], endOf: (r: Run) => number | undefined = (r) => r.end): string[] => {
    const ran = rs.filter((r) => r.start !== undefined).sort((a, b) => (a.start ?? 0) - (b.start ?? 0));
    const out: string[] = [];
    for (let i = 1; i < ran.length; i++) {
      const prevEnd = endOf(ran[i - 1] as Run);
      if (prevEnd === undefined || (ran[i]?.start ?? 0) < prevEnd)
        out.push(`${ran[i - 1]?.taskId} and ${ran[i]?.taskId}`);
    }
    return out;
  };

  it('should queue, skip or run side by side as each schedule says, every run ending', async () => {
    const slow = { TaskProcessorName: 'SleepProcessor', Payload: { ms: 2500 } };
    const file = await groupScheduleFile([
      entry('queued', { TaskMessageTemplate: slow }),
      entry('skipped', { Overlap: 'skip', TaskMessageTemplate: slow }),
      entry('allowed', { Overlap: 'allow', TaskMessageTemplate: slow }),
    ]);
    consumer(uniqueName('g'));
    sg.scheduler(file);
    await waitFor(
      () =>
        runs('skipped').filter((r) => r.final?.status === 'FINISHED').length >= 2 &&
        runs('allowed').filter((r) => r.final?.status === 'FINISHED').length >= 4 &&
        runs('queued').filter((r) => r.final?.status === 'FINISHED').length >= 2,
      {
        timeoutMs: 60_000,
        what: () =>
          `runs to finish (queued ${runs('queued').length}, skipped ${runs('skipped').length}, allowed ${runs('allowed').length})`,
      },
    );

    // queue: one after another, none skipped.
    expect(overlapping(runs('queued').filter((r) => r.end !== undefined))).toEqual([]);
    expect(runs('queued').filter((r) => r.final && r.final.status !== 'FINISHED')).toEqual([]);
    // skip: the fires that came while a run was going ended SKIPPED, naming it; the others ran one at a time.
    const skipped = runs('skipped');
    const ended = skipped.filter((r) => r.final);
    expect(overlapping(ended)).toEqual([]);
    const skips = ended.filter((r) => r.final?.status === 'SKIPPED');
    expect(skips.length).toBeGreaterThanOrEqual(2);
    for (const r of skips) {
      expect(r.start).toBeUndefined();
      expect(r.final?.error).toMatch(
        /^run skipped@\S+ of the same schedule was still (running|waiting) \(overlap skip\)$/,
      );
    }
    expect(ended.every((r) => r.final?.status === 'FINISHED' || r.final?.status === 'SKIPPED')).toBe(true);
    // allow: runs side by side.
    expect(overlapping(runs('allowed').filter((r) => r.end !== undefined)).length).toBeGreaterThan(0);
    expect(runs('allowed').filter((r) => r.final && r.final.status !== 'FINISHED')).toEqual([]);
  });

  it('should replace a running command with the next run, killing its process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'overlap-'));
    const pids = join(dir, 'pids');
    const file = await groupScheduleFile([
      entry('replaced', {
        Cron: '*/2 * * * * *',
        Overlap: 'replace',
        TaskMessageTemplate: {
          TaskProcessorName: 'command',
          Payload: { command: ['sh', '-c', `echo $$ >> ${pids}; exec sleep 30`] },
        },
      }),
    ]);
    consumer(uniqueName('g'), '--enable-command', '--command-programs', 'sh');
    sg.scheduler(file);
    const cancelled = () => runs('replaced').filter((r) => r.final?.status === 'CANCELLED');
    await waitFor(() => cancelled().length >= 2, {
      timeoutMs: 60_000,
      what: () =>
        `two runs replaced (runs: ${runs('replaced')
          .map((r) => r.final?.status ?? 'open')
          .join(' ')})`,
    });
    for (const r of cancelled()) {
      expect(r.start).toBeDefined();
      expect(r.final?.error).toMatch(/^replaced by replaced@\S+ \(overlap replace\)$/);
      expect(r.final?.attempt).toBe(1);
    }
    // Each replaced run was stopped by the next one: it ended before the next one started.
    expect(overlapping(runs('replaced'))).toEqual([]);
    // The shells of the replaced runs were killed; only the latest may still run.
    const started = readFileSync(pids, 'utf8').trim().split('\n').map(Number);
    expect(started.length).toBeGreaterThanOrEqual(3);
    await waitFor(() => started.slice(0, 2).every((p) => !isRunning(p)), {
      timeoutMs: 10_000,
      what: `the commands of replaced runs (${started.slice(0, 2).join(', ')}) killed`,
    });
  });

  it('should skip across a consumer killed with SIGKILL: never two runs at once, every fire ending', async () => {
    const file = await groupScheduleFile([
      entry('crashy', {
        Overlap: 'skip',
        TaskMessageTemplate: { TaskProcessorName: 'SleepProcessor', Payload: { ms: 3000 } },
      }),
    ]);
    const group = uniqueName('g');
    const a = consumer(group);
    sg.scheduler(file);
    // Killed while a run executes, with skips written behind it that were not committed (it has not finished).
    await waitFor(
      () => {
        const rs = runs('crashy');
        const running = rs.find((r) => r.pid === a.pid && r.start !== undefined && !r.final);
        return running && rs.some((r) => r.final?.status === 'SKIPPED' && r.taskId > running.taskId);
      },
      { timeoutMs: 60_000, what: 'a run executing on a with a skip behind it' },
    );
    a.signal('SIGKILL');
    const killedAt = Date.now();
    await a.exited;
    const b = consumer(group);
    await waitFor(() => runs('crashy').some((r) => r.pid === b.pid && r.final?.status === 'FINISHED'), {
      timeoutMs: 60_000,
      what: 'b to finish a run',
    });
    await waitFor(
      () => runs('crashy').some((r) => r.final?.by.pid === b.pid && r.final.status === 'SKIPPED'),
      {
        timeoutMs: 30_000,
        what: 'b to skip a fire',
      },
    );
    b.signal('SIGTERM');
    expect((await b.exited).code).toBe(0);
    // The run a was killed in ended at the kill: no two runs of the schedule at once, on a or b.
    const rs = runs('crashy');
    expect(overlapping(rs, (r) => r.end ?? (r.pid === a.pid ? killedAt : undefined))).toEqual([]);
    // Every fire up to b's last run ended, FINISHED or SKIPPED.
    const instant = (r: Run): number => Date.parse(r.taskId.slice(r.taskId.indexOf('@') + 1));
    const lastEnded = Math.max(...rs.filter((r) => r.final?.by.pid === b.pid).map(instant));
    const open = rs.filter((r) => instant(r) <= lastEnded && !r.final);
    expect(open.map((r) => r.taskId)).toEqual([]);
  });

  it('should not hold back a schedule behind a slow one of the same partition', async () => {
    const fast = Array.from({ length: 200 }, (_, i) => `fast${i}`).find(
      (id) => partitionForKey(id, 12) === partitionForKey('slow', 12),
    ) as string;
    const file = await groupScheduleFile([
      entry('slow', { TaskMessageTemplate: { TaskProcessorName: 'SleepProcessor', Payload: { ms: 5000 } } }),
      entry(fast),
    ]);
    consumer(uniqueName('g'));
    sg.scheduler(file);
    await waitFor(() => runs('slow').filter((r) => r.final?.status === 'FINISHED').length >= 2, {
      timeoutMs: 60_000,
      what: 'two slow runs to finish',
    });
    // From when the slow schedule first ran: how long each fast run waited from its instant to its start.
    const since = runs('slow').find((r) => r.start !== undefined)?.start ?? 0;
    const waits = runs(fast)
      .filter((r) => r.start !== undefined && Date.parse(r.taskId.split('@')[1] ?? '') >= since)
      .map((r) => (r.start as number) - Date.parse(r.taskId.split('@')[1] ?? ''))
      .sort((x, y) => x - y);
    console.log(
      `fast schedule beside a 5 s one in partition ${partitionForKey('slow', 12)}: ${waits.length} runs, ` +
        `wait p50 ${waits[Math.floor(waits.length / 2)]} ms, max ${waits.at(-1)} ms`,
    );
    expect(waits.length).toBeGreaterThanOrEqual(5);
    expect(waits.at(-1)).toBeLessThan(1500);
  });
});
