import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApi } from './helpers/api.js';
import type { Api } from './helpers/api.js';
import { brokers, kafka, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { opsUrl, scrape, total } from './helpers/metrics.js';
import { killAll, ROOT, startCli } from './helpers/processes.js';
import { publishTasks, taskMessage } from './helpers/tasks.js';
import { waitFor } from '../kit/wait.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

const run = promisify(execFile);
const TASKS = 'taskmanager.tasks';
const FIXTURES = 'test/fixtures/test-processors.js';

/** A consumer of `topic` in a group of its own, with the test processors. */
const fixtureConsumer = (topic: string) =>
  startCli('taskconsumer', ['-b', brokers(), '-t', topic, '-g', uniqueName('c'), '--processors', FIXTURES]);

/**
 * The two request examples of the task services we replace as our README gives them: their bodies exactly as
 * their READMEs have them, plus the bearer token our API requires.
 */
const SEED_CURLS = [
  `curl -H "Authorization: Bearer $TOKEN" -X POST http://localhost:8080/api/v1/tasks -H 'Content-Type: application/json' -d '{"name":"email","type":"recurring","period":"5s","payload":{"to":"user@example.com","subject":"Hello"}}'`,
  `curl -H "Authorization: Bearer $TOKEN" -X POST http://localhost:8080/api/tasks -H 'Content-Type: application/json' -d '{"task_type":"email","payload":{"to":"user@example.com","subject":"Welcome"},"run_at":"2026-02-20T10:00:00Z"}'`,
];

type Task = {
  id: string;
  version: string;
  status: string;
  schedule: Record<string, unknown>;
  lastRun?: { state: string };
};

async function tasksEndOffsets(): Promise<string> {
  const admin = kafka().admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(TASKS);
    return offsets
      .sort((a, b) => a.partition - b.partition)
      .map((o) => o.high)
      .join(',');
  } finally {
    await admin.disconnect();
  }
}

describe('taskapi with a scheduler and a consumer', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });
  let group: string;

  beforeEach(() => {
    group = uniqueName('api-sched');
  });

  let logs: () => string = () => '';
  const startPipeline = async (schedulerArgs: string[] = []): Promise<Api> => {
    const api = await startApi(['--group', group, '--topic', fx.topic]);
    const s = startCli('taskscheduler', ['-b', brokers(), '-s', 'none', '--group', group, ...schedulerArgs]);
    const c = fixtureConsumer(fx.topic);
    logs = () => `\n--- scheduler ---\n${s.output.slice(-1500)}\n--- consumer ---\n${c.output.slice(-1500)}`;
    return api;
  };
  /** Runs that finished, as the API folds them from taskmanager.events (FINISHED events). */
  const finished = async (api: Api, id: string) => {
    const r = await api.call<{ items: Array<{ taskId: string; state: string }> }>(
      'GET',
      `/api/v1/tasks/${id}/runs`,
    );
    return (r.body.items ?? []).filter((x) => x.state === 'FINISHED');
  };
  const fired = (id: string) => fx.reader.values<TaskMessage>(fx.topic, (t) => t.scheduleId === id);

  it('should take the old services’ README curl examples as written and really run their tasks', async () => {
    const api = await startPipeline();
    const port = new URL(api.url).port;
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const ids: string[] = [];
    for (const curl of SEED_CURLS) {
      expect(readme, 'the README shows this example').toContain(curl);
      const { stdout } = await run(
        'bash',
        ['-c', `${curl.replace('localhost:8080', `127.0.0.1:${port}`)} -s`],
        {
          env: { ...process.env, TOKEN: api.token },
        },
      );
      // /api/v1/tasks shows the old word beside ours; /api/tasks in `status`, as that service did.
      const created = JSON.parse(stdout) as { id: string; status: string; legacyStatus?: string };
      expect(created.legacyStatus ?? created.status, stdout).toBe('PENDING');
      ids.push(created.id);
    }
    const [recurring, once] = ids as [string, string];
    // Every 5 s: four runs in a row, 5 s apart, none twice.
    await waitFor(async () => (await finished(api, recurring)).length >= 4, {
      timeoutMs: 45_000,
      what: 'four recurring runs',
    });
    const instants = fired(recurring)
      .map((t) => Date.parse(t.scheduledFor))
      .sort((a, b) => a - b);
    expect(instants.slice(1).map((t, i) => t - instants[i]!)).toEqual(instants.slice(1).map(() => 5000));
    expect(await finished(api, once)).toHaveLength(1);
    expect(fired(once)).toHaveLength(1);
    const shown = await api.call<{ status: string; state: string }>('GET', `/api/tasks/${once}`);
    expect([shown.status, shown.body.status, shown.body.state]).toEqual([200, 'COMPLETED', 'FINISHED']);
  });

  it('should fire a one-shot task once at its time', async () => {
    const api = await startPipeline();
    const runAt = new Date(Math.ceil((Date.now() + 4000) / 1000) * 1000).toISOString();
    const created = await api.call<{ id: string }>('POST', '/api/tasks', {
      task_type: 'email',
      run_at: runAt,
    });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id;
    await waitFor(async () => (await finished(api, id)).length === 1, {
      timeoutMs: 30_000,
      what: 'the one-shot run',
    }).catch((err: Error) => {
      throw new Error(`${err.message} (fired ${fired(id).length})${logs()}`);
    });
    const [msg] = fired(id);
    expect(msg?.scheduledFor).toBe(runAt);
    expect(Date.parse(msg!.firedAt)).toBeGreaterThanOrEqual(Date.parse(runAt));
    const task = await waitFor(
      async () => {
        const t = await api.call<Task>('GET', `/api/v1/tasks/${id}`);
        return t.body.status === 'FINISHED' ? t.body : undefined;
      },
      { timeoutMs: 10_000, what: 'status FINISHED' },
    );
    expect(task).not.toHaveProperty('nextRunAt');
  });

  // Batched is what this release writes; per-task is what earlier releases wrote (and `--scheduled-events per-task`).
  for (const form of ['batched', 'per-task'])
    it(`should show when a run was fired from its SCHEDULED event written ${form}`, async () => {
      const api = await startPipeline(['--scheduled-events', form]);
      const runAt = new Date(Math.ceil((Date.now() + 3000) / 1000) * 1000).toISOString();
      const created = await api.call<{ id: string }>('POST', '/api/v1/tasks', {
        processor: 'NoopProcessor',
        schedule: { runAt },
      });
      expect(created.status, created.text).toBe(201);
      const id = created.body.id;
      const run = await waitFor(
        async () => {
          const r = await api.call<{ items: Array<{ state: string; firedAt?: string }> }>(
            'GET',
            `/api/v1/tasks/${id}/runs`,
          );
          const [first] = r.body.items ?? [];
          return first?.state === 'FINISHED' && first.firedAt !== undefined ? first : undefined;
        },
        { timeoutMs: 30_000, what: 'a FINISHED run with its fire time' },
      ).catch((err: Error) => {
        throw new Error(`${err.message} (fired ${fired(id).length})${logs()}`);
      });
      const [msg] = fired(id);
      expect(run.firedAt).toBe(msg?.firedAt);
    });

  it('should create, get, list, update, trigger and delete a task, each visible in what fires', async () => {
    const api = await startPipeline();
    const id = uniqueName('crud');
    const created = await api.call<Task>('POST', '/api/v1/tasks', {
      id,
      processor: 'NoopProcessor',
      schedule: { cron: '*/2 * * * * *' },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.headers.get('etag')).toBe(`"${created.body.version}"`);
    const got = await api.call<Task>('GET', `/api/v1/tasks/${id}`);
    expect([got.status, got.body.schedule]).toEqual([200, { cron: '*/2 * * * * *' }]);
    // Every page of the list (the broker may hold the tasks of earlier runs too).
    const listedIds: string[] = [];
    for (let cursor = ''; ;) {
      const page = await api.call<{ items: Task[]; nextCursor?: string }>(
        'GET',
        `/api/v1/tasks?processor=NoopProcessor&limit=1000${cursor}`,
      );
      listedIds.push(...page.body.items.map((t) => t.id));
      if (!page.body.nextCursor) break;
      cursor = `&cursor=${encodeURIComponent(page.body.nextCursor)}`;
    }
    expect(listedIds).toContain(id);
    await waitFor(() => fired(id).length >= 2, { timeoutMs: 30_000, what: 'two fires on */2' });
    expect(fired(id).every((t) => new Date(t.scheduledFor).getUTCSeconds() % 2 === 0)).toBe(true);

    const updated = await api.call<Task>(
      'PUT',
      `/api/v1/tasks/${id}`,
      { processor: 'NoopProcessor', schedule: { cron: '*/3 * * * * *' } },
      { 'if-match': created.headers.get('etag')! },
    );
    expect(updated.status, updated.text).toBe(200);
    const changedAt = Date.now();
    const after = () => fired(id).filter((t) => Date.parse(t.scheduledFor) > changedAt + 1000);
    await waitFor(() => after().length >= 2, { timeoutMs: 30_000, what: 'two fires on */3' });
    expect(after().map((t) => new Date(t.scheduledFor).getUTCSeconds() % 3)).toEqual(after().map(() => 0));

    const trig = await api.call<{ taskId: string }>('POST', `/api/v1/tasks/${id}/trigger`);
    expect(trig.status, trig.text).toBe(202);
    await waitFor(() => fired(id).some((t) => t.taskId === trig.body.taskId), {
      timeoutMs: 10_000,
      what: 'the triggered task in Kafka',
    });
    const runs = await waitFor(
      async () => {
        const r = await api.call<{ items: Array<{ taskId: string; state: string }> }>(
          'GET',
          `/api/v1/tasks/${id}/runs`,
        );
        return r.body.items.some((x) => x.taskId === trig.body.taskId && x.state === 'FINISHED')
          ? r.body.items
          : undefined;
      },
      { timeoutMs: 15_000, what: 'the triggered run FINISHED in the run history' },
    );
    expect(runs.length).toBeGreaterThanOrEqual(5);

    const canary = await api.call<Task>('POST', '/api/v1/tasks', {
      processor: 'NoopProcessor',
      schedule: { every: '1s' },
    });
    expect((await api.call('DELETE', `/api/v1/tasks/${id}`)).status).toBe(204);
    const deletedAt = Date.now();
    expect((await api.call('GET', `/api/v1/tasks/${id}`)).status).toBe(404);
    const canaryAfter = () =>
      fired(canary.body.id).filter((t) => Date.parse(t.scheduledFor) > deletedAt).length;
    await waitFor(() => canaryAfter() >= 4, {
      timeoutMs: 20_000,
      what: 'the canary firing 4 times after the delete',
    });
    expect(fired(id).filter((t) => Date.parse(t.scheduledFor) > deletedAt + 500)).toEqual([]);
  });
});

describe('two taskapi instances', () => {
  afterEach(killAll);

  it('should show a task created through one on the other within a second, and let only one of two racing updates win', async () => {
    const [a, b] = await Promise.all([startApi([]), startApi([])]);
    const created = await a!.call<Task>('POST', '/api/v1/tasks', {
      processor: uniqueName('p'),
      schedule: { cron: '0 0 1 1 *' },
      enabled: false,
    });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id;
    const t0 = Date.now();
    const seen = await waitFor(
      async () => {
        const r = await b!.call<Task>('GET', `/api/v1/tasks/${id}`);
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 5000, intervalMs: 10, what: 'the task through the other instance' },
    );
    expect(Date.now() - t0).toBeLessThan(1000);
    const etag = seen.headers.get('etag')!;
    expect(etag).toBe(created.headers.get('etag'));

    // Sequential: A changes it, then B is asked with the ETag from before.
    const viaA = await a!.call<Task>(
      'PATCH',
      `/api/v1/tasks/${id}`,
      { name: 'from-a' },
      { 'if-match': etag },
    );
    expect(viaA.status, viaA.text).toBe(200);
    const stale = await b!.call('PATCH', `/api/v1/tasks/${id}`, { name: 'from-b' }, { 'if-match': etag });
    expect(stale.status, stale.text).toBe(409);
    expect(stale.headers.get('content-type')).toMatch(/^application\/problem\+json/);

    // Concurrent: both based on the same version, through different instances.
    const current = viaA.headers.get('etag')!;
    await waitFor(async () => (await b!.call('GET', `/api/v1/tasks/${id}`)).headers.get('etag') === current, {
      timeoutMs: 5000,
    });
    const answers = await Promise.all([
      a!.call<Task>('PATCH', `/api/v1/tasks/${id}`, { name: 'race-a' }, { 'if-match': current }),
      b!.call<Task>('PATCH', `/api/v1/tasks/${id}`, { name: 'race-b' }, { 'if-match': current }),
    ]);
    expect(answers.map((r) => r.status).sort()).toEqual([200, 409]);
    const winner = answers.find((r) => r.status === 200)!.body as Task & { name: string };
    for (const api of [a!, b!])
      await waitFor(
        async () => {
          const r = await api.call<Task & { name: string }>('GET', `/api/v1/tasks/${id}`);
          return r.body.name === winner.name && r.body.version === winner.version;
        },
        { timeoutMs: 5000, what: `${api.url} agreeing on the winner ${winner.name}` },
      );
    // A restarted instance rebuilds the same answer from the topic.
    const c = await startApi([]);
    const rebuilt = await c.call<Task & { name: string }>('GET', `/api/v1/tasks/${id}`);
    expect([rebuilt.body.name, rebuilt.body.version]).toEqual([winner.name, winner.version]);
  });
});

describe('taskapi given bad input', () => {
  afterEach(killAll);

  it('should answer 409, not 503, to a schedule command for an API task whose group runs no scheduler', async () => {
    // Found by schemathesis on a fresh broker: the answer said "taking over?" (503) where no instance would ever.
    const group = uniqueName('nobody');
    const api = await startApi(['--group', group]);
    const made = await api.call<Task>('POST', '/api/v1/tasks', { processor: 'p', schedule: { every: '1h' } });
    expect(made.status, made.text).toBe(201);
    const r = await api.call<{ detail: string }>(
      'POST',
      `/api/v1/schedules/${group}/${made.body.id}/trigger`,
    );
    expect([r.status, r.body.detail]).toEqual([
      409,
      `no instance of scheduler group ${group} is running: fire ${made.body.id} without one with POST /api/v1/tasks/${made.body.id}/trigger`,
    ]);
  });

  it('should answer each with problem+json listing every error, and write nothing', async () => {
    const api = await startApi(['--metrics-port', '0']);
    const existing = await api.call<Task>('POST', '/api/v1/tasks', {
      processor: uniqueName('p'),
      schedule: { every: '1h' },
      enabled: false,
    });
    expect(existing.status).toBe(201);
    const id = existing.body.id;
    const before = await tasksEndOffsets();
    const json = { 'content-type': 'application/json' };
    const cases: Array<[string, string, string, unknown, Record<string, string>, number, string[]]> = [
      ['invalid JSON', 'POST', '/api/v1/tasks', '{"processor":', json, 400, []],
      [
        'unknown fields and wrong types',
        'POST',
        '/api/v1/tasks',
        { processor: 7, schedule: { cron: '* * * * *' }, colour: 'red', enabled: 'yes' },
        {},
        400,
        ['/colour', '/processor', '/enabled'],
      ],
      [
        'bad cron',
        'POST',
        '/api/v1/tasks',
        { processor: 'p', schedule: { cron: '* * 32 * *' } },
        {},
        400,
        ['/schedule/cron'],
      ],
      [
        'every below 1 s',
        'POST',
        '/api/v1/tasks',
        { processor: 'p', schedule: { every: '999ms' } },
        {},
        400,
        ['/schedule/every'],
      ],
      [
        'runAt not RFC 3339',
        'POST',
        '/api/v1/tasks',
        { processor: 'p', schedule: { runAt: '25/12/2026' } },
        {},
        400,
        ['/schedule/runAt'],
      ],
      [
        'old body without period',
        'POST',
        '/api/v1/tasks',
        { name: 'email', type: 'recurring' },
        {},
        400,
        ['/period'],
      ],
      [
        'old one-shot body, bad run_at',
        'POST',
        '/api/tasks',
        { task_type: 'email', run_at: 'soon' },
        {},
        400,
        ['/run_at'],
      ],
      [
        'too large',
        'POST',
        '/api/v1/tasks',
        { processor: 'p', schedule: { every: '5s' }, param: 'x'.repeat(600_000) },
        {},
        413,
        [],
      ],
      [
        'wrong content type',
        'POST',
        '/api/v1/tasks',
        'processor=p',
        { 'content-type': 'text/plain' },
        415,
        [],
      ],
      [
        'form content type',
        'POST',
        '/api/v1/tasks',
        'processor=p',
        { 'content-type': 'application/x-www-form-urlencoded' },
        415,
        [],
      ],
      [
        'bad patch',
        'PATCH',
        `/api/v1/tasks/${id}`,
        { enabled: 'no', schedule: { every: 0 } },
        {},
        400,
        ['/enabled', '/schedule/every'],
      ],
      [
        'stale If-Match',
        'PATCH',
        `/api/v1/tasks/${id}`,
        { enabled: true },
        { 'if-match': '"999999"' },
        409,
        [],
      ],
      [
        'existing id',
        'POST',
        '/api/v1/tasks',
        { id, processor: 'p', schedule: { every: '5s' } },
        {},
        409,
        [],
      ],
      [
        'internal topic',
        'POST',
        '/api/v1/tasks',
        { id: 'user:test-admin', processor: 'p', schedule: { every: '1h' }, topic: 'taskmanager.users' },
        {},
        400,
        ['/topic'],
      ],
      [
        'missing topic',
        'POST',
        '/api/v1/tasks',
        { processor: 'p', schedule: { every: '5s' }, topic: uniqueName('none') },
        {},
        400,
        ['/topic'],
      ],
      ['unknown task', 'DELETE', `/api/v1/tasks/${uniqueName('none')}`, undefined, {}, 404, []],
      [
        'limit too high',
        'GET',
        '/api/v1/tasks?limit=1001&status=DONE',
        undefined,
        {},
        400,
        ['/limit', '/status'],
      ],
    ];
    for (const [what, method, path, body, headers, status, pointers] of cases) {
      const r = await api.call<{ status: number; detail: string; errors?: Array<{ pointer: string }> }>(
        method,
        path,
        body,
        headers,
      );
      expect(r.status, `${what}: ${r.text}`).toBe(status);
      expect(r.headers.get('content-type'), what).toMatch(/^application\/problem\+json/);
      expect(r.body.status, what).toBe(status);
      expect(r.body.detail, what).toBeTruthy();
      expect((r.body.errors ?? []).map((e) => e.pointer).sort(), what).toEqual([...pointers].sort());
    }
    expect(await tasksEndOffsets()).toBe(before);
    // Counted by route pattern and status (never by raw URL).
    const series = await scrape(await opsUrl(api.cli));
    const byStatus = (status: number) => cases.filter((c) => c[5] === status).length;
    expect(total(series, 'taskmanager_api_requests_total', { status: '400' })).toBe(byStatus(400));
    expect(
      total(series, 'taskmanager_api_requests_total', { route: '/api/v1/tasks/:id', status: '409' }),
    ).toBe(1);
    expect(total(series, 'taskmanager_api_ready')).toBe(1);
  });
});

describe('the DLQ through taskapi', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });

  it('should list a dead-lettered task with its reason and original offset, and replay it for an operator only', async () => {
    const api = await startApi([]);
    fixtureConsumer(fx.topic);
    const task = taskMessage(uniqueName('dlq'), 'BadInputProcessor');
    await publishTasks(fx.topic, [task]);
    type Dlq = {
      waiting: number;
      items: Array<{ taskId: string; reason: string; original: { topic: string }; replayedBy?: string }>;
    };
    const listed = await waitFor(
      async () => {
        const r = await api.call<Dlq>('GET', `/api/v1/dlq/${fx.topic}`);
        return r.body.items?.some((e) => e.taskId === task.taskId) ? r.body : undefined;
      },
      { timeoutMs: 30_000, what: 'the task in the DLQ' },
    );
    expect(listed.items.find((e) => e.taskId === task.taskId)).toMatchObject({
      reason: 'non-retriable',
      original: { topic: fx.topic },
    });
    expect((await api.call('GET', '/api/v1/dlq/taskmanager.users')).status).toBe(400);
    expect((await api.call('GET', `/api/v1/dlq/${uniqueName('none')}`)).status).toBe(404);
    const made = await api.call('POST', '/api/v1/users', {
      username: uniqueName('v'),
      password: 'viewer-password',
      role: 'viewer',
    });
    const viewer = await api.login((made.body as { name: string }).name, 'viewer-password');
    const denied = await api.call(
      'POST',
      `/api/v1/dlq/${fx.topic}/replay`,
      { taskId: task.taskId },
      {},
      { token: viewer },
    );
    expect(denied.status).toBe(403);
    const replayed = await api.call<{ replayed: unknown[] }>('POST', `/api/v1/dlq/${fx.topic}/replay`, {
      taskId: task.taskId,
    });
    expect([replayed.status, replayed.body.replayed.length]).toEqual([200, 1]);
    await waitFor(() => fired(fx, task.scheduleId).length === 2, {
      timeoutMs: 10_000,
      what: 'the task back on its topic',
    });
    const after = await api.call<Dlq>('GET', `/api/v1/dlq/${fx.topic}`);
    expect(after.body.items.find((e) => e.taskId === task.taskId)?.replayedBy).toMatch(/^\d+@\d+$/);
  });
});

function fired(
  fx: { topic: string; reader: { values<T>(topic: string): T[] } },
  scheduleId: string,
): TaskMessage[] {
  return fx.reader.values<TaskMessage>(fx.topic).filter((t) => t.scheduleId === scheduleId);
}
