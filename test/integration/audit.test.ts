import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, startFileScheduler } from './helpers/api.js';
import type { Api } from './helpers/api.js';
import { createTopics, deleteTopics, uniqueName } from './helpers/kafka.js';
import { killAll } from './helpers/processes.js';
import { waitFor } from '../kit/wait.js';

type Entry = Record<string, unknown> & { action: string; user: string; at: string; position: string };
type Page = { items: Entry[]; total: number; nextCursor?: string; status: string };

const PASSWORD = 'audit-test-password';

describe('the audit trail over HTTP (GET /api/v1/audit)', () => {
  let api: Api;
  let topic: string;
  const group = uniqueName('audit-group');
  const fileEntry = uniqueName('audit-file');
  const operator = uniqueName('audit-op');
  const viewer = uniqueName('audit-viewer');
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    topic = uniqueName('audit-tasks');
    await createTopics([topic]);
    api = await startApi(['--topic', topic, '--group', group]);
    const users: Array<[string, string]> = [
      [operator, 'operator'],
      [viewer, 'viewer'],
    ];
    for (const [name, role] of users) {
      const r = await api.call('POST', '/api/v1/users', { username: name, password: PASSWORD, role });
      expect(r.status, r.text).toBe(201);
      tokens[name] = await api.login(name, PASSWORD);
    }
    await startFileScheduler(api, topic, group, fileEntry);
  });
  afterAll(async () => {
    await killAll();
    await deleteTopics([topic]);
  });

  const as = (who: string, method: string, path: string, body?: unknown) =>
    api.call(method, path, body, {}, { token: tokens[who]! });
  const audit = async (query: string, who = viewer): Promise<Page> => {
    const r = await api.call<Page>('GET', `/api/v1/audit?${query}`, undefined, {}, { token: tokens[who]! });
    expect(r.status, r.text).toBe(200);
    return r.body;
  };
  /** The entries of `query` once there are `n` of them (events reach taskapi's view a fetch after they are written). */
  const entries = (query: string, n: number): Promise<Entry[]> =>
    waitFor(
      async () => {
        const page = await audit(query);
        return page.total >= n ? page.items : undefined;
      },
      { timeoutMs: 20_000, what: `${n} audit entries of ?${query}` },
    );

  it('should show who created, paused and triggered a task and paused, triggered and resumed a file schedule, filtered and paged', async () => {
    const id = uniqueName('audited');
    const created = await as(operator, 'POST', '/api/v1/tasks', {
      id,
      processor: 'NoopProcessor',
      schedule: { cron: '0 0 1 1 *' },
    });
    expect(created.status, created.text).toBe(201);
    const paused = await as(operator, 'PATCH', `/api/v1/tasks/${id}`, { enabled: false });
    expect(paused.status, paused.text).toBe(200);
    const fired = await as(operator, 'POST', `/api/v1/tasks/${id}/trigger`);
    expect(fired.status, fired.text).toBe(202);
    const taskId = (fired.body as { taskId: string }).taskId;

    const items = await entries(`task=${id}`, 3);
    expect(items.map((e) => [e.action, e.user, e.group])).toEqual([
      ['task.triggered', operator, group],
      ['task.changed', operator, group],
      ['task.created', operator, group],
    ]);
    expect(items[0]).toMatchObject({ task: id, taskId });
    expect(items[1]).toMatchObject({ task: id, changed: ['enabled'], enabled: false });
    expect(items.map((e) => e.at)).toEqual([...items.map((e) => e.at)].sort().reverse());

    // The file schedule's actions go through its owner, and are audited by taskapi.
    for (const action of ['pause', 'trigger', 'resume']) {
      const r = await as(operator, 'POST', `/api/v1/schedules/${group}/${fileEntry}/${action}`);
      expect(r.status, r.text).toBe(action === 'trigger' ? 202 : 200);
    }
    const schedule = await entries(`task=${fileEntry}&group=${group}`, 3);
    expect(schedule.map((e) => [e.action, e.schedule, e.user])).toEqual([
      ['schedule.resumed', fileEntry, operator],
      ['schedule.triggered', fileEntry, operator],
      ['schedule.paused', fileEntry, operator],
    ]);
    expect(schedule[1]!.taskId).toMatch(new RegExp(`^${fileEntry}@`));

    // Filters: by action (exact, or its kind), by user, by group, by time.
    expect((await audit(`task=${id}&action=task.triggered`)).items.map((e) => e.taskId)).toEqual([taskId]);
    expect((await audit(`group=${group}&action=schedule`)).total).toBe(3);
    expect((await audit(`group=${group}&actor=${operator}`)).total).toBe(6);
    expect((await audit(`group=${group}&actor=${viewer}`)).total).toBe(0);
    expect((await audit(`task=${id}&since=${encodeURIComponent(items[1]!.at)}`)).total).toBe(2);
    // Paged two at a time, newest first: the same six entries as one page.
    const whole = (await audit(`group=${group}&limit=100`)).items.map((e) => e.position);
    const walked: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await audit(`group=${group}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.items.length).toBeLessThanOrEqual(2);
      walked.push(...page.items.map((e) => e.position));
      cursor = page.nextCursor;
    } while (cursor);
    expect([walked.length, walked]).toEqual([6, whole]);
  });

  it('should show another group nothing of this one, and nothing at all without a token', async () => {
    const id = uniqueName('audited');
    expect(
      (
        await as(operator, 'POST', '/api/v1/tasks', {
          id,
          processor: 'NoopProcessor',
          schedule: { cron: '0 0 1 1 *' },
        })
      ).status,
    ).toBe(201);
    await entries(`task=${id}`, 1);
    // Those of another group (a reader filtering on theirs) are none of these.
    const other = await audit(`group=${uniqueName('another-group')}`);
    expect([other.total, other.items]).toEqual([0, []]);
    const mine = await audit(`group=${group}`);
    expect(mine.items.every((e) => e.group === group)).toBe(true);
    const anonymous = await api.call('GET', `/api/v1/audit?task=${id}`, undefined, {}, { token: null });
    expect(anonymous.status).toBe(401);
  });
});
