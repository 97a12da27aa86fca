import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { heldTask, startApi } from './helpers/api.js';
import type { Api } from './helpers/api.js';
import { produce, TopicReader, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { killAll } from './helpers/processes.js';
import { EVENTS, fixtureConsumer, publishTasks, taskMessage } from './helpers/tasks.js';
import { waitFor } from '../kit/wait.js';
import { statusEvent, statusEventRecord } from '../../src/shared/codecs/task-event.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';

interface Run {
  taskId: string;
  state: string;
  attempts: number;
  startedAt?: string;
  finishedAt?: string;
  consumer?: { host: string; pid: number };
}

describe('EXECUTING only for runs still going after --executing-after-ms', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });
  let api: Api;
  let id: string;
  let events: TopicReader;
  beforeEach(async () => {
    events = await new TopicReader([{ topic: EVENTS, fromEnd: true }]).start();
    api = await startApi(['--topic', fx.topic]);
    id = uniqueName('exec');
    await heldTask(api, id, 'LogsAndProgressProcessor');
  });
  afterEach(async () => {
    await events.stop();
  });

  const run = async (taskId: string): Promise<Run | undefined> =>
    (await api.call<{ items: Run[] }>('GET', `/api/v1/tasks/${id}/runs`)).body.items.find(
      (r) => r.taskId === taskId,
    );
  const runIn = (taskId: string, state: string): Promise<Run> => {
    let seen: unknown;
    return waitFor(
      async () => {
        const r = await run(taskId);
        seen = r;
        return r?.state === state ? r : undefined;
      },
      { timeoutMs: 30_000, what: () => `${taskId} ${state} in taskapi (saw ${JSON.stringify(seen)})` },
    );
  };
  const consumerEvents = (taskId: string): StatusEvent[] =>
    events.values<StatusEvent>(EVENTS, (e) => e.taskId === taskId && e.by.role === 'consumer');

  it('should write a short run its final event alone, shown FINISHED with its start time and consumer', async () => {
    const consumer = fixtureConsumer(fx.topic);
    const task = taskMessage(id, 'LogsAndProgressProcessor', { lines: 0 });
    await publishTasks(fx.topic, [task]);
    const done = await runIn(task.taskId, 'FINISHED');
    await waitFor(() => consumerEvents(task.taskId).length > 0, {
      timeoutMs: 30_000,
      what: 'its events read',
    });
    const written = consumerEvents(task.taskId);
    expect(written.map((e) => `${e.status}/${e.attempt}`)).toEqual(['FINISHED/1']);
    expect(done.startedAt).toBe(written[0]?.startedAt);
    expect(Date.parse(done.startedAt ?? '')).toBeLessThanOrEqual(Date.parse(done.finishedAt ?? ''));
    expect(done).toMatchObject({ attempts: 1, consumer: { pid: consumer.pid } });
  });

  it('should show a run longer than the threshold RUNNING meanwhile, from its start', async () => {
    const go = join(mkdtempSync(join(tmpdir(), 'exec-')), 'go');
    fixtureConsumer(fx.topic);
    const task = taskMessage(id, 'LogsAndProgressProcessor', { lines: 0, waitFile: go });
    await publishTasks(fx.topic, [task]);
    const running = await runIn(task.taskId, 'RUNNING');
    const executing = consumerEvents(task.taskId).find((e) => e.status === 'EXECUTING');
    expect(executing?.startedAt).toBe(running.startedAt);
    // Written at the threshold, after the start.
    expect(Date.parse(executing?.at ?? '') - Date.parse(running.startedAt ?? '')).toBeGreaterThanOrEqual(500);
    writeFileSync(go, '');
    const done = await runIn(task.taskId, 'FINISHED');
    expect(done.startedAt).toBe(running.startedAt);
    expect(consumerEvents(task.taskId).map((e) => `${e.status}/${e.attempt}`)).toEqual([
      'EXECUTING/1',
      'FINISHED/1',
    ]);
  });

  it('should read the EXECUTING then FINISHED of a consumer of an earlier release as before', async () => {
    const task = taskMessage(id, 'LogsAndProgressProcessor', { lines: 0 });
    const by = { host: 'old-consumer', pid: 4242, role: 'consumer' as const };
    const source = { topic: fx.topic, partition: 0, offset: '0' };
    // As an older consumer writes them: no startedAt, the start being the EXECUTING's `at`.
    const old = [
      statusEvent(task, 'EXECUTING', '2026-11-25T08:00:00.010Z', 1, by, { source }),
      statusEvent(task, 'FINISHED', '2026-11-25T08:00:00.030Z', 1, by, { source, durationMs: 20 }),
    ];
    expect(old.every((e) => !('startedAt' in e))).toBe(true);
    await produce(
      EVENTS,
      old.map((e) => {
        const r = statusEventRecord(e);
        return { key: r.key as string, value: r.value as string, headers: r.headers };
      }),
    );
    const done = await runIn(task.taskId, 'FINISHED');
    expect(done).toMatchObject({
      attempts: 1,
      startedAt: '2026-11-25T08:00:00.010Z',
      finishedAt: '2026-11-25T08:00:00.030Z',
      consumer: { host: 'old-consumer', pid: 4242 },
    });
  });
});
