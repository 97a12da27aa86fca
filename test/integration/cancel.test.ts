import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApi } from './helpers/api.js';
import { brokers, TopicReader, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { killAll, runCli, startCli } from './helpers/processes.js';
import { isRunning } from '../kit/processes.js';
import { EVENTS, publishTasks, taskMessage } from './helpers/tasks.js';
import { waitFor } from '../kit/wait.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';

describe('cancelling tasks', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });
  let events: TopicReader;
  beforeEach(async () => {
    events = await new TopicReader([{ topic: EVENTS, fromEnd: true }]).start();
  });
  afterEach(async () => {
    await events.stop();
  });
  const statuses = (taskId: string): string[] =>
    events.values<StatusEvent>(EVENTS, (e) => e.taskId === taskId).map((e) => `${e.status}/${e.attempt}`);
  const event = (taskId: string, status: StatusEvent['status']): StatusEvent | undefined =>
    events.values<StatusEvent>(EVENTS, (e) => e.taskId === taskId && e.status === status).at(-1);
  const consumer = (group: string, ...flags: string[]) =>
    startCli('taskconsumer', ['-b', brokers(), '-t', fx.topic, '-g', group, ...flags]);
  const cancel = async (taskId: string, ...flags: string[]) => {
    const r = await runCli('taskconsumer', ['cancel', taskId, '-b', brokers(), ...flags]);
    expect(r.code, r.output).toBe(0);
    expect(r.stdout).toContain(`cancel of ${taskId} requested`);
  };

  it('should stop a running command (its process killed) and never start the task waiting behind it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cancel-'));
    const pidFile = join(dir, 'pid');
    const marker = join(dir, 'ran');
    const id = uniqueName('c');
    // One schedule, two runs: the second waits in the first one's lane (same key).
    const running = taskMessage(id, 'command', {
      command: ['sh', '-c', `sleep 60 & echo $! > ${pidFile}; wait`],
    });
    const waiting = taskMessage(
      id,
      'command',
      { command: ['sh', '-c', `touch ${marker}`] },
      Date.parse(running.scheduledFor) + 1000,
    );
    consumer(uniqueName('g'), '--enable-command', '--command-programs', 'sh');
    await publishTasks(fx.topic, [running, waiting]);
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', {
      timeoutMs: 30_000,
      what: 'the first command running',
    });
    const sleepPid = Number(readFileSync(pidFile, 'utf8').trim());
    // Still running past --executing-after-ms (500 ms): its EXECUTING is written.
    await waitFor(() => event(running.taskId, 'EXECUTING'), {
      timeoutMs: 30_000,
      what: 'the first run EXECUTING',
    });

    await cancel(waiting.taskId, '--reason', 'not needed');
    await cancel(running.taskId);
    await waitFor(() => event(waiting.taskId, 'CANCELLED') && event(running.taskId, 'CANCELLED'), {
      timeoutMs: 30_000,
      what: () =>
        `both CANCELLED (first: ${statuses(running.taskId).join(' ')}; second: ${statuses(waiting.taskId).join(' ')})`,
    });
    expect(statuses(running.taskId)).toEqual(['EXECUTING/1', 'CANCELLED/1']);
    expect(event(running.taskId, 'CANCELLED')?.error).toMatch(/^cancelled by operator on /);
    expect(statuses(waiting.taskId)).toEqual(['CANCELLED/0']);
    expect(event(waiting.taskId, 'CANCELLED')?.error).toMatch(/: not needed$/);
    expect(existsSync(marker)).toBe(false);
    await waitFor(() => !isRunning(sleepPid), {
      timeoutMs: 10_000,
      what: `the command's child ${sleepPid} killed`,
    });
    expect(fx.reader.records.filter((r) => r.topic === `${fx.topic}.dlq`)).toEqual([]);
  });

  it('should not start a task cancelled while no consumer ran, and run the others', async () => {
    const cancelled = taskMessage(uniqueName('c'), 'command', { command: ['sh', '-c', 'exit 0'] });
    const other = taskMessage(uniqueName('c'), 'command', { command: ['sh', '-c', 'exit 0'] });
    await publishTasks(fx.topic, [cancelled, other]);
    await cancel(cancelled.taskId);
    consumer(uniqueName('g'), '--enable-command', '--command-programs', 'sh');
    await waitFor(() => event(cancelled.taskId, 'CANCELLED') && event(other.taskId, 'FINISHED'), {
      timeoutMs: 30_000,
      what: () => `the cancelled one CANCELLED (${statuses(cancelled.taskId).join(' ')}), the other FINISHED`,
    });
    expect(statuses(cancelled.taskId)).toEqual(['CANCELLED/0']);
  });

  it('should cancel a run of an API task over HTTP, show it in its runs, and refuse a second cancel', async () => {
    const group = uniqueName('api-group');
    const api = await startApi(['--group', group, '--topic', fx.topic]);
    consumer(uniqueName('g'), '--processors', 'test/fixtures/test-processors.js');
    startCli('taskscheduler', ['-b', brokers(), '--group', group]);
    const id = uniqueName('hang');
    const created = await api.call<{ id: string; group: string }>('POST', '/api/v1/tasks', {
      id,
      processor: 'HangProcessor',
      schedule: { runAt: new Date(Date.now() + 1000).toISOString() },
    });
    expect(created.status, created.text).toBe(201);
    const runs = async () =>
      (
        await api.call<{ items: Array<{ taskId: string; state: string; cancelled?: string }> }>(
          'GET',
          `/api/v1/tasks/${id}/runs`,
        )
      ).body.items;
    const run = await waitFor(async () => (await runs()).find((r) => r.state === 'RUNNING'), {
      timeoutMs: 30_000,
      what: 'its run RUNNING',
    });

    const foreign = await api.call(
      'POST',
      `/api/v1/tasks/${id}/runs/other@2026-01-01T00:00:00.000Z/cancel`,
      {},
    );
    expect(foreign.status).toBe(404);
    const asked = await api.call<{ state: string; message: string }>(
      'POST',
      `/api/v1/tasks/${id}/runs/${encodeURIComponent(run.taskId)}/cancel`,
      { reason: 'hangs' },
    );
    expect(asked.status, asked.text).toBe(202);
    expect(asked.body.state).toBe('RUNNING');
    const ended = await waitFor(async () => (await runs()).find((r) => r.state === 'CANCELLED'), {
      timeoutMs: 30_000,
      what: 'its run CANCELLED',
    });
    expect(ended.cancelled).toMatch(/^cancelled by .* \(api\): hangs$/);
    const again = await api.call(
      'POST',
      `/api/v1/tasks/${id}/runs/${encodeURIComponent(run.taskId)}/cancel`,
      {},
    );
    expect(again.status).toBe(409);
    expect(again.text).toContain('ended CANCELLED');
    const task = await api.call<{ status: string; legacyStatus: string }>('GET', `/api/v1/tasks/${id}`);
    expect(task.body).toMatchObject({ status: 'CANCELLED', legacyStatus: 'CANCELLED' });
  });
});
