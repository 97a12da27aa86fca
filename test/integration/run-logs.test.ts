import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { heldTask, startApi } from './helpers/api.js';
import type { Api } from './helpers/api.js';
import { brokers, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { killAll, runCli, startCli } from './helpers/processes.js';
import { fixtureConsumer, publishTasks, taskMessage } from './helpers/tasks.js';
import { waitFor } from '../kit/wait.js';

interface Run {
  taskId: string;
  state: string;
  progress?: { fraction: number; message?: string; at: string };
}
interface Log {
  items: Array<{ at: string; attempt: number; stream: string; text: string }>;
  dropped: { lines: number; bytes: number };
  ended: number[];
  note?: string;
}

describe('run logs and progress', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });
  let api: Api;
  let id: string;
  beforeEach(async () => {
    api = await startApi(['--topic', fx.topic]);
    id = uniqueName('logs');
    await heldTask(api, id, 'LogsAndProgressProcessor');
    fixtureConsumer(fx.topic, undefined, '--enable-command', '--command-programs', 'sh');
  });

  const run = async (taskId: string): Promise<Run | undefined> =>
    (await api.call<{ items: Run[] }>('GET', `/api/v1/tasks/${id}/runs`)).body.items.find(
      (r) => r.taskId === taskId,
    );
  const logOf = async (taskId: string): Promise<Log> => {
    const r = await api.call<Log>('GET', `/api/v1/tasks/${id}/runs/${encodeURIComponent(taskId)}/logs`);
    expect(r.status, r.text).toBe(200);
    return r.body;
  };
  /** Waits until the run finished and taskapi shows its log up to its last line. */
  const finished = async (taskId: string): Promise<{ run: Run; log: Log }> => {
    let seen: unknown;
    return waitFor(
      async () => {
        const [r, log] = [await run(taskId), await logOf(taskId)];
        seen = { run: r, lines: log.items.length, note: log.note };
        return r?.state === 'FINISHED' && log.items.at(-1)?.text === 'done' ? { run: r, log } : undefined;
      },
      { timeoutMs: 30_000, what: () => `${taskId} FINISHED with its log (saw ${JSON.stringify(seen)})` },
    );
  };

  it('should show the lines a processor logged and its progress in the API and taskconsumer logs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'run-logs-'));
    const go = join(dir, 'go');
    const task = taskMessage(id, 'LogsAndProgressProcessor', { lines: 10, waitFile: go });
    await publishTasks(fx.topic, [task]);

    // While it runs: its lines so far, its progress on the run, and `logs --follow` printing them.
    let seen: unknown;
    const live = await waitFor(
      async () => {
        const [r, log] = [await run(task.taskId), await logOf(task.taskId)];
        seen = { run: r, lines: log.items.length, note: log.note };
        return r?.state === 'RUNNING' && r.progress?.fraction === 1 && log.items.length === 10
          ? { r, log }
          : undefined;
      },
      { timeoutMs: 30_000, what: () => `${task.taskId} running with 10 lines (saw ${JSON.stringify(seen)})` },
    );
    expect(live.r.progress?.message).toBe('line 10 of 10');
    expect(live.log.ended).toEqual([]);
    const follow = startCli('taskconsumer', ['logs', task.taskId, '--follow', '-b', brokers()]);
    await follow.waitForOutput(/#1 info +line 10 of 10\n/);

    writeFileSync(go, '');
    const { run: done, log } = await finished(task.taskId);
    expect(log.items.map((l) => `${l.attempt} ${l.stream} ${l.text}`)).toEqual([
      ...Array.from({ length: 10 }, (_, i) => `1 info line ${i + 1} of 10`),
      '1 warn done',
    ]);
    expect(log).toMatchObject({ dropped: { lines: 0, bytes: 0 }, ended: [1] });
    expect(log.note).toBeUndefined();
    expect(done.progress).toMatchObject({ fraction: 1, message: 'line 10 of 10' });
    await follow.waitForOutput(/#1 warn +done\n/);
    follow.signal('SIGINT');
    expect((await follow.exited).code).toBe(0);

    const printed = await runCli('taskconsumer', ['logs', task.taskId, '-b', brokers()]);
    expect(printed.code, printed.output).toBe(0);
    const lines = printed.stdout.trim().split('\n');
    expect(lines).toHaveLength(11);
    expect(lines[0]).toMatch(/^\S+Z #1 info +line 1 of 10$/);
    expect(lines.at(-1)).toMatch(/^\S+Z #1 warn +done$/);
  });

  it('should keep the last 1,000 lines of a run over the bound and count the others', async () => {
    const task = taskMessage(id, 'LogsAndProgressProcessor', { lines: 1500 });
    await publishTasks(fx.topic, [task]);
    const { log } = await finished(task.taskId);
    expect(log.items).toHaveLength(1000);
    expect(log.items[0]?.text).toBe('line 502 of 1500');
    expect(log.dropped.lines).toBe(501);
    const printed = await runCli('taskconsumer', ['logs', task.taskId, '-b', brokers()]);
    expect(printed.code, printed.output).toBe(0);
    const lines = printed.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^… 501 line\(s\) and \d+ byte\(s\) of this run not kept/);
    expect(lines).toHaveLength(1001);
    expect(lines[1]).toMatch(/ line 502 of 1500$/);
  });

  it('should keep a command’s output, stdout and stderr, line by line', async () => {
    const task = taskMessage(id, 'command', {
      command: ['sh', '-c', 'echo first; echo oops >&2; printf "no newline at the end"'],
    });
    await publishTasks(fx.topic, [task]);
    // The log's end and the run's FINISHED come from two topics that taskapi follows apart: wait for both.
    let seen: unknown;
    const log = await waitFor(
      async () => {
        const [r, l] = [await run(task.taskId), await logOf(task.taskId)];
        seen = { state: r?.state, ended: l.ended };
        return r?.state === 'FINISHED' && l.ended.length > 0 ? l : undefined;
      },
      {
        timeoutMs: 30_000,
        what: () => `${task.taskId} FINISHED with its log ended (saw ${JSON.stringify(seen)})`,
      },
    );
    expect(log.items.map((l) => `${l.stream} ${l.text}`).sort()).toEqual(
      ['stdout first', 'stderr oops', 'stdout no newline at the end'].sort(),
    );
  });

  it('should answer 404 for a taskId of another schedule', async () => {
    const r = await api.call('GET', `/api/v1/tasks/${id}/runs/other@2026-01-01T00:00:00.000Z/logs`);
    expect(r.status).toBe(404);
    expect(r.text).toContain(`is no run of ${id}`);
  });
});
