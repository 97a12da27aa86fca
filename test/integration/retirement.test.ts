import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApi } from './helpers/api.js';
import type { Api } from './helpers/api.js';
import { brokers, TopicReader, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { killAll, startCli } from './helpers/processes.js';
import { waitFor } from '../kit/wait.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';
import { foldTaskRecord, nextKeyState } from '../../src/shared/tasks/task-log.js';
import type { KeyState } from '../../src/shared/tasks/task-log.js';

const TASKS = 'taskmanager.tasks';

/*
 * Finished one-shot tasks are retired: taskapi deletes them from taskmanager.tasks `keepFinished` after their run
 * ended, exactly one delete in effect however many taskapi instances run, also across a restart; and a task retired
 * while a manual run of it is in flight is retired only once that run ended, and never fired again.
 */
describe('retirement of finished one-shot tasks', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });
  let group: string;
  let tasksReader: TopicReader;

  beforeEach(async () => {
    group = uniqueName('retire');
    tasksReader = await new TopicReader([{ topic: TASKS, fromEnd: true }]).start();
  });
  afterEach(async () => {
    await tasksReader.stop();
  });

  const startPipeline = async (apis: number): Promise<Api[]> => {
    const started = await Promise.all(
      Array.from({ length: apis }, () => startApi(['--group', group, '--topic', fx.topic])),
    );
    startCli('taskscheduler', ['-b', brokers(), '-s', 'none', '--group', group]);
    startCli('taskconsumer', ['-b', brokers(), '-t', fx.topic, '-g', uniqueName('c')]);
    return started;
  };
  const oneShot = async (api: Api, id: string, body: Record<string, unknown>) => {
    const r = await api.call('POST', '/api/v1/tasks', {
      id,
      processor: 'NoopProcessor',
      schedule: { runAt: new Date(Date.now() + 1500).toISOString() },
      ...body,
    });
    expect(r.status, r.text).toBe(201);
  };
  /** The deletes of `id` every reader of the topic accepted, and those it rejected, in log order. */
  const deletes = (id: string) => {
    let state: KeyState | undefined;
    const out = { accepted: 0, rejected: 0 };
    for (const r of tasksReader.records.filter((x) => x.key === id)) {
      const outcome = foldTaskRecord(state, {
        offset: r.offset,
        value: r.value === null ? null : Buffer.from(r.value),
        headers: r.headers,
      });
      if (r.value === null)
        out[outcome.kind === 'rejected' ? 'rejected' : 'accepted'] += outcome.kind === 'same' ? 0 : 1;
      state = nextKeyState(state, outcome) ?? state;
    }
    return out;
  };
  const fired = (id: string) => fx.reader.values<TaskMessage>(fx.topic, (t) => t.scheduleId === id);
  const retired = async (api: Api, id: string) => {
    const r = await api.call('GET', `/api/v1/tasks/${id}`);
    return r.status === 404 && /retired/.test(r.text) ? (r.body as { detail: string }).detail : undefined;
  };

  it('should retire a finished one-shot once with two taskapi instances racing, and say so on GET', async () => {
    const [a, b] = await startPipeline(2);
    const id = uniqueName('once');
    await oneShot(a!, id, { keepFinished: '2s' });
    let detail: string | undefined;
    await waitFor(async () => (detail = await retired(b!, id)) !== undefined, {
      timeoutMs: 40_000,
      what: `task ${id} retired`,
    });
    expect(detail).toMatch(
      new RegExp(
        `^task ${id} was a one-shot task that was retired \\(removed\\) at \\S+ after its run ${id}@\\S+ ended FINISHED at `,
      ),
    );
    // Both instances had it due; whichever came second found it gone or was rejected: one delete in effect.
    await waitFor(async () => (await retired(a!, id)) !== undefined, {
      timeoutMs: 10_000,
      what: 'A sees it retired',
    });
    await waitFor(() => deletes(id).accepted > 0, { timeoutMs: 10_000, what: 'the delete read back' });
    expect(deletes(id).accepted).toBe(1);
    // Every delete of it is conditional (a later one is rejected by every reader, whatever it was based on). When
    // the two raced closely, the rejected one's writer restated the key: a repair, naming the version it restates.
    const tombstones = tasksReader.records.filter((r) => r.key === id && r.value === null);
    expect(
      tombstones.filter(
        (r) => !(r.headers['tm-base'] || (r.headers['tm-op'] === 'repair' && r.headers['tm-version'])),
      ),
      JSON.stringify(tombstones.map((r) => r.headers)),
    ).toEqual([]);
    expect(fired(id)).toHaveLength(1);
  });

  it('should retire after a restart of taskapi a task whose run ended before it', async () => {
    const [api] = await startPipeline(1);
    const id = uniqueName('restart');
    await oneShot(api!, id, { keepFinished: '8s' });
    await waitFor(
      async () =>
        (await api!.call<{ status: string }>('GET', `/api/v1/tasks/${id}`)).body.status === 'FINISHED',
      { timeoutMs: 30_000, what: `task ${id} FINISHED` },
    );
    api!.cli.signal('SIGTERM');
    await api!.cli.exited;
    const again = await startApi(['--group', group, '--topic', fx.topic]);
    expect(again.cli.output).toMatch(/\d+ finished one-shot task\(s\) to retire when due/);
    await waitFor(async () => (await retired(again, id)) !== undefined, {
      timeoutMs: 30_000,
      what: `task ${id} retired after the restart`,
    });
    await waitFor(() => deletes(id).accepted > 0, { timeoutMs: 10_000, what: 'the delete read back' });
    expect(deletes(id).accepted).toBe(1);
  });

  it('should retire a task whose manual run is in flight only after that run ended, and not fire it again', async () => {
    const [api] = await startPipeline(1);
    const id = uniqueName('inflight');
    await oneShot(api!, id, { keepFinished: '1s', processor: 'SleepProcessor', payload: { ms: 100 } });
    await waitFor(
      async () =>
        (await api!.call<{ status: string }>('GET', `/api/v1/tasks/${id}`)).body.status === 'FINISHED',
      { timeoutMs: 30_000, what: `task ${id} FINISHED` },
    );
    // Its retirement is due in a second; a manual run of 4 s starts now (payload changed first).
    const t = await api!.call<{ version: string }>('GET', `/api/v1/tasks/${id}`);
    const patched = await api!.call(
      'PATCH',
      `/api/v1/tasks/${id}`,
      { payload: { ms: 4000 } },
      { 'if-match': t.body.version },
    );
    expect(patched.status, patched.text).toBe(200);
    const trigger = await api!.call<{ taskId: string }>('POST', `/api/v1/tasks/${id}/trigger`);
    expect(trigger.status, trigger.text).toBe(202);
    await waitFor(
      async () =>
        (await api!.call<{ lastRun?: { state: string } }>('GET', `/api/v1/tasks/${id}`)).body.lastRun
          ?.state === 'RUNNING',
      { timeoutMs: 20_000, what: 'the manual run running' },
    );
    const runningAt = Date.now();
    await waitFor(async () => (await retired(api!, id)) !== undefined, {
      timeoutMs: 30_000,
      what: `task ${id} retired`,
    });
    const detail = (await retired(api!, id))!;
    expect(detail).toContain(`after its run ${trigger.body.taskId} ended FINISHED`);
    expect(Date.now() - runningAt).toBeGreaterThan(2000);
    // Nothing fires it again: a one-shot created after its retirement fires, and by then it has not.
    const canary = uniqueName('canary');
    await oneShot(api!, canary, {});
    await waitFor(() => fired(canary).length === 1, { timeoutMs: 20_000, what: 'the canary fired' });
    expect(fired(id).map((t) => t.taskId)).toEqual([
      `${id}@${fired(id)[0]!.scheduledFor}`,
      trigger.body.taskId,
    ]);
  });
});
