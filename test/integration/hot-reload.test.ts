import { mkdtemp, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokers, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { killAll, startCli } from './helpers/processes.js';
import { waitFor } from '../kit/wait.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

describe('when the schedule file is edited while taskscheduler runs', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });

  it('should apply valid edits (added, changed, removed) and reject invalid ones, the last good one firing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tm-reload-'));
    const file = join(dir, 'schedule.json');
    const entry = (id: string, cron: string) => ({
      Id: id,
      Cron: cron,
      Topic: fx.topic,
      TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor' },
    });
    // Written the way deploy tools do it: a temporary file renamed over the old one.
    const write = async (content: string) => {
      await writeFile(join(dir, 'tmp'), content);
      await rename(join(dir, 'tmp'), file);
    };
    await write(JSON.stringify([entry('a', '* * * * * *'), entry('b', '* * * * * *')]));
    const s = startCli('taskscheduler', ['-b', brokers(), '-s', file, '--group', uniqueName('g')]);
    const tasks = () => fx.reader.values<TaskMessage>(fx.topic);
    const of = (id: string) => tasks().filter((t) => t.scheduleId === id);
    await waitFor(() => of('a').length >= 2 && of('b').length >= 2, {
      timeoutMs: 60_000,
      what: 'a and b firing',
    });

    await write(JSON.stringify([entry('b', '*/2 * * * * *'), entry('c', '* * * * * *')]));
    await s.waitForOutput(/schedule reloaded: 1 added \[c\], 1 changed \[b\], 1 removed \[a\]/);
    const editedAt = Date.now();
    await waitFor(() => of('c').length >= 3, { timeoutMs: 30_000, what: 'c firing' });

    await write('[{ "Id": "b", "Cron": "99 * * * * *" ');
    await s.waitForOutput(/edit rejected \(1 problem\(s\)\); the last good schedule keeps firing/);
    const rejectedAt = Date.now();
    await waitFor(() => of('c').some((t) => Date.parse(t.scheduledFor) > rejectedAt + 1000), {
      timeoutMs: 30_000,
    });
    s.signal('SIGTERM');
    expect((await s.exited).code).toBe(0);
    await fx.reader.caughtUp(fx.topic);

    expect(of('a').filter((t) => Date.parse(t.scheduledFor) > editedAt)).toEqual([]);
    const bAfter = of('b').filter((t) => Date.parse(t.scheduledFor) > editedAt);
    expect(bAfter.length).toBeGreaterThan(0);
    for (const t of bAfter) expect(new Date(t.scheduledFor).getUTCSeconds() % 2).toBe(0);
    const ids = tasks().map((t) => t.taskId);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
