import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokers, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { killAll, startCli } from './helpers/processes.js';
import { waitFor } from '../kit/wait.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

describe('one-shot (RunAt) and interval (Every) entries in a schedule file', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });

  it('should fire an overdue one-shot at once, a future one at its time, an interval on its multiples; none again after a restart', async () => {
    const now = Date.now();
    const late = new Date(now - 60_000).toISOString();
    const soon = new Date(Math.ceil((now + 4000) / 1000) * 1000).toISOString();
    const entry = (Id: string, when: object) => ({
      Id,
      ...when,
      Topic: fx.topic,
      TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor' },
    });
    const file = join(await mkdtemp(join(tmpdir(), 'tm-kinds-')), 'kinds.json');
    await writeFile(
      file,
      JSON.stringify([
        entry('late', { RunAt: late }),
        entry('soon', { RunAt: soon }),
        entry('every2', { Every: '2s' }),
      ]),
    );
    const group = uniqueName('kinds');
    const tasks = () => fx.reader.values<TaskMessage>(fx.topic);
    const of = (id: string) => tasks().filter((t) => t.scheduleId === id);

    const first = startCli('taskscheduler', ['-b', brokers(), '-s', file, '--group', group]);
    await first.waitForOutput(/one-shot late was due at .* and never fired: firing it now/);
    await waitFor(() => of('soon').length === 1 && of('every2').length >= 4, {
      timeoutMs: 30_000,
      what: 'soon and 4 intervals',
    });
    expect(of('late').map((t) => t.scheduledFor)).toEqual([late]);
    const [s] = of('soon');
    expect(s?.scheduledFor).toBe(soon);
    expect(Date.parse(s?.firedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(soon));
    const intervals = of('every2').map((t) => Date.parse(t.scheduledFor));
    expect(intervals.every((t) => t % 2000 === 0)).toBe(true);
    expect(new Set(intervals).size).toBe(intervals.length);

    first.signal('SIGTERM');
    expect((await first.exited).code).toBe(0);
    const second = startCli('taskscheduler', ['-b', brokers(), '-s', file, '--group', group]);
    const before = of('every2').length;
    await waitFor(() => of('every2').length >= before + 2, {
      timeoutMs: 30_000,
      what: 'intervals after the restart',
    });
    expect(of('late')).toHaveLength(1);
    expect(of('soon')).toHaveLength(1);
    expect(second.output).not.toMatch(/one-shot/);
  });
});
