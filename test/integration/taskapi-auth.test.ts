import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DATA_DIR, startApi, startFileScheduler, TEST_ADMIN } from './helpers/api.js';
import type { Api, ApiAnswer } from './helpers/api.js';
import { brokers, createTopics, deleteTopics, kafka, uniqueName } from './helpers/kafka.js';
import { opsUrl } from './helpers/metrics.js';
import { killAll, ROOT, runCli } from './helpers/processes.js';
import { waitFor } from '../kit/wait.js';

type Role = 'viewer' | 'operator' | 'admin';

async function offsetsOf(topic: string): Promise<Map<number, string>> {
  const admin = kafka().admin();
  await admin.connect();
  try {
    return new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p.high]));
  } finally {
    await admin.disconnect();
  }
}

/** Every record of a topic from `from` (each partition's offset; default its start) to its end now, as text. */
async function readRange(topic: string, from?: Map<number, string>): Promise<string[]> {
  const ends = await offsetsOf(topic);
  const out: string[] = [];
  const pending = new Set(
    [...ends].filter(([p, end]) => Number(end) > Number(from?.get(p) ?? 0)).map(([p]) => p),
  );
  if (pending.size === 0) return out;
  const consumer = kafka().consumer({ groupId: uniqueName('leak'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  try {
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        out.push(
          `${message.key?.toString() ?? ''} ${message.value?.toString() ?? ''} ${JSON.stringify(message.headers)}`,
        );
        if (Number(message.offset) + 1 >= Number(ends.get(partition))) pending.delete(partition);
      },
    });
    if (from) for (const [partition, offset] of from) consumer.seek({ topic, partition, offset });
    await waitFor(() => pending.size === 0, { timeoutMs: 30_000, what: `${topic} read to its end` });
  } finally {
    await consumer.disconnect();
  }
  return out;
}
const PASSWORD = 'role-matrix-password';

/** Adds a user with the operators' CLI (straight to taskmanager.users) and logs them in. */
async function addUser(api: Api, role: Role, password = PASSWORD): Promise<{ name: string; token: string }> {
  const name = uniqueName(role);
  const r = await runCli('taskapi', ['users', 'add', name, '--role', role, '-b', brokers()], 30_000, {
    TASKAPI_PASSWORD: password,
  });
  expect(r.code, r.output).toBe(0);
  return { name, token: await api.login(name, password) };
}

/** A JWT like the instance's own, signed with `key` (PEM), with these claims. */
async function forge(
  key: string,
  claims: { sub: string; exp: number; role?: string },
  kid?: string,
): Promise<string> {
  const jwt = new SignJWT({ role: claims.role ?? 'admin' })
    .setProtectedHeader({ alg: 'EdDSA', ...(kid ? { kid } : {}) })
    .setIssuer('taskapi')
    .setSubject(claims.sub)
    .setIssuedAt(claims.exp - 60)
    .setExpirationTime(claims.exp);
  return jwt.sign(createPrivateKey(key));
}

const kidOf = (jwt: string): string =>
  (JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;

describe('taskapi routes × roles', () => {
  let api: Api;
  let topic: string;
  const users = {} as Record<Role, { name: string; token: string }>;
  const group = uniqueName('auth-group');
  /** The schedule file entry of the group's scheduler, for the schedule commands (once its owner reports it). */
  const fileEntry = uniqueName('auth-file');

  beforeAll(async () => {
    topic = uniqueName('auth-tasks');
    await createTopics([topic]);
    api = await startApi(['--topic', topic, '--group', group]);
    users.admin = { name: TEST_ADMIN.username, token: api.token! };
    users.operator = await addUser(api, 'operator');
    users.viewer = await addUser(api, 'viewer');
    await startFileScheduler(api, topic, group, fileEntry);
  });
  afterAll(async () => {
    await killAll();
    await deleteTopics([topic]);
  });

  const newCalendar = async (): Promise<string> => {
    const name = uniqueName('cal');
    const r = await api.call('PUT', `/api/v1/calendars/${name}`, { dates: ['2026-12-25'] });
    expect(r.status, r.text).toBe(201);
    return name;
  };
  const newTask = async (): Promise<string> => {
    const r = await api.call<{ id: string }>('POST', '/api/v1/tasks', {
      processor: 'NoopProcessor',
      schedule: { cron: '0 0 1 1 *' },
      enabled: false,
    });
    expect(r.status, r.text).toBe(201);
    return r.body.id;
  };
  /** An enabled task (its one instant a year, on 1 January) that the group's scheduler has taken in. */
  const ownedTask = async (): Promise<string> => {
    const r = await api.call<{ id: string }>('POST', '/api/v1/tasks', {
      processor: 'NoopProcessor',
      schedule: { cron: '0 0 1 1 *' },
    });
    expect(r.status, r.text).toBe(201);
    await waitFor(
      async () =>
        (await api.call<{ owner?: string }>('GET', `/api/v1/schedules/${group}/${r.body.id}`)).body.owner !==
        undefined,
      { timeoutMs: 30_000, what: 'the scheduler reporting the new task' },
    );
    return r.body.id;
  };
  const newUser = async (): Promise<string> => {
    const name = uniqueName('u');
    const r = await api.call('POST', '/api/v1/users', { username: name, password: PASSWORD, role: 'viewer' });
    expect(r.status, r.text).toBe(201);
    return name;
  };
  const newToken = async (token: string): Promise<string> => {
    const r = await api.call<{ id: string }>('POST', '/api/v1/tokens', { name: 'matrix' }, {}, { token });
    expect(r.status, r.text).toBe(201);
    return r.body.id;
  };

  type Call = { method: string; path: string; body?: unknown };
  /** Every guarded operation: the least role it needs, and a valid request for a caller (fresh fixtures each). */
  const ROUTES: Record<
    string,
    { need: Role; ok: number; call: (who: { name: string; token: string }) => Promise<Call> }
  > = {
    'POST /api/v1/tasks': {
      need: 'operator',
      ok: 201,
      call: async () => ({
        method: 'POST',
        path: '/api/v1/tasks',
        body: { processor: 'p', schedule: { every: '1h' }, enabled: false },
      }),
    },
    'GET /api/v1/tasks': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: '/api/v1/tasks?limit=5' }),
    },
    'GET /api/v1/tasks/{id}': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: `/api/v1/tasks/${await newTask()}` }),
    },
    'PUT /api/v1/tasks/{id}': {
      need: 'operator',
      ok: 200,
      call: async () => ({
        method: 'PUT',
        path: `/api/v1/tasks/${await newTask()}`,
        body: { processor: 'p', schedule: { every: '2h' }, enabled: false },
      }),
    },
    'PATCH /api/v1/tasks/{id}': {
      need: 'operator',
      ok: 200,
      call: async () => ({
        method: 'PATCH',
        path: `/api/v1/tasks/${await newTask()}`,
        body: { name: 'patched' },
      }),
    },
    'DELETE /api/v1/tasks/{id}': {
      need: 'operator',
      ok: 204,
      call: async () => ({ method: 'DELETE', path: `/api/v1/tasks/${await newTask()}` }),
    },
    'POST /api/v1/tasks/{id}/trigger': {
      need: 'operator',
      ok: 202,
      call: async () => ({ method: 'POST', path: `/api/v1/tasks/${await newTask()}/trigger` }),
    },
    'POST /api/v1/tasks/{id}/backfill': {
      need: 'operator',
      ok: 200,
      call: async () => ({
        method: 'POST',
        path: `/api/v1/tasks/${await ownedTask()}/backfill`,
        body: { from: '2026-01-01T00:00:00Z', to: '2026-01-01T00:00:00Z', dryRun: true },
      }),
    },
    'GET /api/v1/tasks/{id}/next': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: `/api/v1/tasks/${await newTask()}/next?count=3` }),
    },
    'GET /api/v1/tasks/{id}/runs': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: `/api/v1/tasks/${await newTask()}/runs` }),
    },
    'GET /api/v1/tasks/{id}/runs/{taskId}/logs': {
      need: 'viewer',
      ok: 200,
      call: async () => {
        const id = await newTask();
        return { method: 'GET', path: `/api/v1/tasks/${id}/runs/${id}@2099-01-01T00:00:00.000Z/logs` };
      },
    },
    'POST /api/v1/tasks/{id}/runs/{taskId}/cancel': {
      need: 'operator',
      ok: 202,
      call: async () => {
        const id = await newTask();
        return {
          method: 'POST',
          path: `/api/v1/tasks/${id}/runs/${id}@2099-01-01T00:00:00.000Z/cancel`,
          body: {},
        };
      },
    },
    'POST /api/tasks': {
      need: 'operator',
      ok: 201,
      call: async () => ({
        method: 'POST',
        path: '/api/tasks',
        body: { task_type: 'email', run_at: '2099-01-01T00:00:00Z' },
      }),
    },
    'GET /api/tasks/{id}': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: `/api/tasks/${await newTask()}` }),
    },
    'GET /api/v1/users': {
      need: 'admin',
      ok: 200,
      call: async () => ({ method: 'GET', path: '/api/v1/users' }),
    },
    'POST /api/v1/users': {
      need: 'admin',
      ok: 201,
      call: async () => ({
        method: 'POST',
        path: '/api/v1/users',
        body: { username: uniqueName('n'), password: PASSWORD, role: 'viewer' },
      }),
    },
    'GET /api/v1/users/{id}': {
      need: 'viewer',
      ok: 200,
      call: async (who) => ({ method: 'GET', path: `/api/v1/users/${who.name}` }),
    },
    // Your own password (with the current one); an admin changes a fresh user's (test-admin is shared by every file).
    'PUT /api/v1/users/{id}': {
      need: 'viewer',
      ok: 200,
      call: async (who) =>
        who.name === TEST_ADMIN.username
          ? { method: 'PUT', path: `/api/v1/users/${await newUser()}`, body: { password: PASSWORD } }
          : {
              method: 'PUT',
              path: `/api/v1/users/${who.name}`,
              body: { password: PASSWORD, currentPassword: PASSWORD },
            },
    },
    'DELETE /api/v1/users/{id}': {
      need: 'admin',
      ok: 204,
      call: async () => ({ method: 'DELETE', path: `/api/v1/users/${await newUser()}` }),
    },
    'PUT /api/v1/users/{id}/role': {
      need: 'admin',
      ok: 200,
      call: async () => ({
        method: 'PUT',
        path: `/api/v1/users/${await newUser()}/role`,
        body: { role: 'operator' },
      }),
    },
    'GET /api/v1/tokens': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: '/api/v1/tokens' }),
    },
    'POST /api/v1/tokens': {
      need: 'viewer',
      ok: 201,
      call: async () => ({ method: 'POST', path: '/api/v1/tokens', body: { name: 'ci' } }),
    },
    'DELETE /api/v1/tokens/{id}': {
      need: 'viewer',
      ok: 204,
      call: async (who) => ({ method: 'DELETE', path: `/api/v1/tokens/${await newToken(who.token)}` }),
    },
    'DELETE /api/v1/tokens': {
      need: 'viewer',
      ok: 204,
      call: async (who) => ({ method: 'DELETE', path: `/api/v1/tokens?id=${await newToken(who.token)}` }),
    },
    'GET /api/v1/dlq/{topic}': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: `/api/v1/dlq/${topic}` }),
    },
    'POST /api/v1/dlq/{topic}/replay': {
      need: 'operator',
      ok: 200,
      call: async () => ({ method: 'POST', path: `/api/v1/dlq/${topic}/replay`, body: { all: true } }),
    },
    'GET /api/v1/schedules': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: '/api/v1/schedules' }),
    },
    'GET /api/v1/schedules/{group}/{id}': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: `/api/v1/schedules/${group}/${await newTask()}` }),
    },
    ...Object.fromEntries(
      (['trigger', 'pause', 'resume'] as const).map((action) => [
        `POST /api/v1/schedules/{group}/{id}/${action}`,
        {
          need: 'operator' as const,
          ok: action === 'trigger' ? 202 : 200,
          call: async () => ({ method: 'POST', path: `/api/v1/schedules/${group}/${fileEntry}/${action}` }),
        },
      ]),
    ),
    'GET /api/v1/calendars': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: '/api/v1/calendars' }),
    },
    'GET /api/v1/calendars/{name}': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: `/api/v1/calendars/${await newCalendar()}` }),
    },
    'PUT /api/v1/calendars/{name}': {
      need: 'operator',
      ok: 201,
      call: async () => ({
        method: 'PUT',
        path: `/api/v1/calendars/${uniqueName('cal')}`,
        body: { dates: ['2026-12-24/2026-12-26'] },
      }),
    },
    'DELETE /api/v1/calendars/{name}': {
      need: 'operator',
      ok: 204,
      call: async () => ({ method: 'DELETE', path: `/api/v1/calendars/${await newCalendar()}` }),
    },
    'GET /api/v1/schedules/{group}/{id}/runs/{taskId}/logs': {
      need: 'viewer',
      ok: 200,
      call: async () => ({
        method: 'GET',
        path: `/api/v1/schedules/${group}/${fileEntry}/runs/${fileEntry}@2099-01-01T00:00:00.000Z/logs`,
      }),
    },
    'POST /api/v1/schedules/{group}/{id}/runs/{taskId}/cancel': {
      need: 'operator',
      ok: 202,
      call: async () => ({
        method: 'POST',
        path: `/api/v1/schedules/${group}/${fileEntry}/runs/${fileEntry}@2099-01-01T00:00:00.000Z/cancel`,
        body: { reason: 'not that day' },
      }),
    },
    'GET /api/v1/cluster': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: '/api/v1/cluster' }),
    },
    'GET /api/v1/audit': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: `/api/v1/audit?group=${group}&limit=5` }),
    },
    'GET /api/v1/alerts': {
      need: 'viewer',
      ok: 200,
      call: async () => ({ method: 'GET', path: '/api/v1/alerts' }),
    },
    // An id no alert has: the roles allowed reach the handler, which answers 404 (alerts.test.ts acknowledges one).
    'POST /api/v1/alerts/{id}/ack': {
      need: 'operator',
      ok: 404,
      call: async () => ({ method: 'POST', path: '/api/v1/alerts/00000000000000000000/ack' }),
    },
  };
  const newCommandTask = async (): Promise<string> => {
    const r = await api.call<{ id: string }>('POST', '/api/v1/tasks', commandBody());
    expect(r.status, r.text).toBe(201);
    return r.body.id;
  };
  const commandBody = (over: Record<string, unknown> = {}) => ({
    processor: 'CommandProcessor',
    schedule: { cron: '0 0 1 1 *' },
    enabled: false,
    payload: { command: ['true'] },
    ...over,
  });
  /**
   * The task routes again for a CommandProcessor task (it runs programs on the consumers): creating or changing one,
   * or turning another task into one, needs admin; triggering and deleting one stay with operators.
   */
  const COMMAND_ROUTES: typeof ROUTES = {
    'POST /api/v1/tasks (CommandProcessor)': {
      need: 'admin',
      ok: 201,
      call: async () => ({
        method: 'POST',
        path: '/api/v1/tasks',
        body: commandBody({ processor: 'command' }),
      }),
    },
    'PUT /api/v1/tasks/{id} (CommandProcessor)': {
      need: 'admin',
      ok: 200,
      call: async () => ({
        method: 'PUT',
        path: `/api/v1/tasks/${await newCommandTask()}`,
        body: commandBody({ schedule: { every: '2h' } }),
      }),
    },
    'PATCH /api/v1/tasks/{id} (CommandProcessor)': {
      need: 'admin',
      ok: 200,
      call: async () => ({
        method: 'PATCH',
        path: `/api/v1/tasks/${await newCommandTask()}`,
        body: { name: 'patched' },
      }),
    },
    'PATCH /api/v1/tasks/{id} (into CommandProcessor)': {
      need: 'admin',
      ok: 200,
      call: async () => ({
        method: 'PATCH',
        path: `/api/v1/tasks/${await newTask()}`,
        body: { processor: 'CommandProcessor', payload: { command: ['true'] } },
      }),
    },
    'POST /api/tasks (command)': {
      need: 'admin',
      ok: 201,
      call: async () => ({
        method: 'POST',
        path: '/api/tasks',
        body: { task_type: 'command', payload: { command: ['true'] }, run_at: '2099-01-01T00:00:00Z' },
      }),
    },
    'POST /api/v1/tasks/{id}/trigger (CommandProcessor)': {
      need: 'operator',
      ok: 202,
      call: async () => ({ method: 'POST', path: `/api/v1/tasks/${await newCommandTask()}/trigger` }),
    },
    'DELETE /api/v1/tasks/{id} (CommandProcessor)': {
      need: 'operator',
      ok: 204,
      call: async () => ({ method: 'DELETE', path: `/api/v1/tasks/${await newCommandTask()}` }),
    },
  };
  const PUBLIC = [
    'POST /api/v1/users/login',
    'POST /api/v1/users/signup',
    'GET /api/healthz',
    'GET /api/readyz',
  ];
  const rank: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

  it('should cover every operation of the OpenAPI document, which declares the bearer scheme', async () => {
    const doc = (
      await api.call<{
        paths: Record<string, Record<string, { security?: unknown[] }>>;
        components: { securitySchemes: Record<string, { type: string; scheme: string }> };
        security: unknown[];
      }>('GET', '/api/openapi.json', undefined, {}, { token: null })
    ).body;
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ bearer: [] }]);
    const ops = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([m, op]) => ({
        name: `${m.toUpperCase()} ${path}`,
        open: op.security?.length === 0,
      })),
    );
    expect(
      ops
        .filter((o) => o.open)
        .map((o) => o.name)
        .sort(),
    ).toEqual([...PUBLIC].sort());
    expect(
      ops
        .filter((o) => !o.open)
        .map((o) => o.name)
        .sort(),
    ).toEqual(Object.keys(ROUTES).sort());
  });

  it('should give each role its 2xx or 403 on every route', async () => {
    const got: string[] = [];
    const want: string[] = [];
    for (const [name, route] of Object.entries({ ...ROUTES, ...COMMAND_ROUTES }))
      for (const role of ['viewer', 'operator', 'admin'] as const) {
        const who = users[role];
        const c = await route.call(who);
        const r = await api.call(c.method, c.path, c.body, {}, { token: who.token });
        // A password change ends the access tokens issued before it: log in again.
        if (name === 'PUT /api/v1/users/{id}' && r.status === 200 && who.name !== TEST_ADMIN.username)
          await waitFor(
            async () => {
              const fresh = await api.login(who.name, PASSWORD);
              const ok =
                (await api.call('GET', `/api/v1/users/${who.name}`, undefined, {}, { token: fresh }))
                  .status === 200;
              if (ok) who.token = fresh;
              return ok;
            },
            { timeoutMs: 5000, intervalMs: 250, what: `a token for ${who.name} after the password change` },
          );
        got.push(`${name} as ${role}: ${r.status}${r.status >= 300 ? ` ${r.text.slice(0, 160)}` : ''}`);
        want.push(`${name} as ${role}: ${rank[role] >= rank[route.need] ? route.ok : 403}`);
      }
    expect(got.map((g) => g.replace(/ \{.*$/, ''))).toEqual(want);
  });

  it('should pause a file entry through its owner, and send an API task to PATCH instead', async () => {
    const path = `/api/v1/schedules/${group}/${fileEntry}`;
    expect((await api.call('POST', `${path}/pause`)).status).toBe(200);
    expect((await api.call<{ state: string }>('GET', path)).body.state).toBe('paused');
    expect((await api.call('POST', `${path}/resume`)).status).toBe(200);
    const id = await newTask();
    const refused = await api.call<{ detail: string }>('POST', `/api/v1/schedules/${group}/${id}/pause`);
    expect([refused.status, refused.body.detail]).toEqual([409, expect.stringContaining('PATCH')]);
    const unknown = await api.call('POST', `/api/v1/schedules/${group}/no-such-entry/trigger`);
    const nobody = await api.call('GET', `/api/v1/schedules/${uniqueName('no-group')}/x`);
    expect([unknown.status, nobody.status]).toEqual([404, 404]);
  });

  it('should answer 401 to no token, an expired, foreign, tampered or revoked one, on every route', async () => {
    const key = readFileSync(join(DATA_DIR, 'jwt-signing-key.pem'), 'utf8');
    const now = Math.floor(Date.now() / 1000);
    const kid = kidOf(users.admin.token);
    const [h, p, s] = users.viewer.token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: TEST_ADMIN.username, role: 'admin' })).toString('base64url')}.${s}`;
    const other = generateKeyPairSync('ed25519')
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    const revoked = await api.call<{ id: string; token: string }>(
      'POST',
      '/api/v1/tokens',
      { name: 'to revoke' },
      {},
      { token: users.operator.token },
    );
    expect(
      (await api.call('GET', '/api/v1/tasks', undefined, {}, { token: revoked.body.token })).status,
    ).toBe(200);
    expect(
      (
        await api.call(
          'DELETE',
          `/api/v1/tokens/${revoked.body.id}`,
          undefined,
          {},
          { token: users.operator.token },
        )
      ).status,
    ).toBe(204);
    const bad: Record<string, string | null> = {
      'no token': null,
      expired: await forge(key, { sub: TEST_ADMIN.username, exp: now - 5 }, kid),
      'signed by another key': await forge(other, { sub: TEST_ADMIN.username, exp: now + 600 }, kid),
      'another key, no kid': await forge(other, { sub: TEST_ADMIN.username, exp: now + 600 }),
      'tampered payload': tampered,
      'revoked API token': revoked.body.token,
      'made-up API token': 'tmk_000000000000_secret',
    };
    const wrong: string[] = [];
    for (const [name, route] of Object.entries(ROUTES)) {
      const c = await route.call(users.admin);
      for (const [what, token] of Object.entries(bad)) {
        const r: ApiAnswer = await api.call(c.method, c.path, c.body, {}, { token });
        if (r.status !== 401 || r.headers.get('www-authenticate') === null)
          wrong.push(`${name} with ${what}: ${r.status}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('should end earlier access tokens when a password changes, and never let an API token change one', async () => {
    const u = await addUser(api, 'operator');
    const made = await api.call<{ token: string }>(
      'POST',
      '/api/v1/tokens',
      { name: 'bot' },
      {},
      { token: u.token },
    );
    const viaToken = await api.call(
      'PUT',
      `/api/v1/users/${u.name}`,
      { password: 'taken-over!', currentPassword: PASSWORD },
      {},
      { token: made.body.token },
    );
    expect(viaToken.status, viaToken.text).toBe(403);
    const noCurrent = await api.call(
      'PUT',
      `/api/v1/users/${u.name}`,
      { password: 'new-password-1' },
      {},
      { token: u.token },
    );
    expect(noCurrent.status, noCurrent.text).toBe(403);
    // Tokens carry whole seconds: the change must fall in a later second than the login.
    const before = await api.login(u.name, PASSWORD);
    await waitFor(
      async () =>
        Math.floor(Date.now() / 1000) >
        JSON.parse(Buffer.from(before.split('.')[1]!, 'base64url').toString()).iat,
      {
        timeoutMs: 3000,
        intervalMs: 20,
      },
    );
    const changed = await api.call(
      'PUT',
      `/api/v1/users/${u.name}`,
      { password: 'new-password-1', currentPassword: PASSWORD },
      {},
      { token: before },
    );
    expect(changed.status, changed.text).toBe(200);
    expect((await api.call('GET', '/api/v1/tasks?limit=1', undefined, {}, { token: before })).status).toBe(
      401,
    );
    expect(await api.login(u.name, 'new-password-1')).toBeTruthy();
  });

  it('should end the tokens already issued when a role is lowered, and give the new tokens the lower role', async () => {
    const u = await addUser(api, 'operator');
    const create = (token: string) =>
      api.call(
        'POST',
        '/api/v1/tasks',
        { processor: 'p', schedule: { every: '1h' }, enabled: false },
        {},
        { token },
      );
    expect((await create(u.token)).status).toBe(201);
    const r = await runCli('taskapi', ['users', 'set-role', u.name, 'viewer', '-b', brokers()]);
    expect(r.code, r.output).toBe(0);
    await waitFor(async () => (await create(u.token)).status === 401, {
      timeoutMs: 5000,
      what: 'the demotion applied',
    });
    expect((await create(await api.login(u.name, PASSWORD))).status).toBe(403);
  });
});

describe('taskapi call (the client subcommand)', () => {
  afterEach(killAll);

  it('should send the token from TASKMANAGER_TOKEN or stdin, refuse it as an argument, and exit 1 without one', async () => {
    const api = await startApi([]);
    const list = ['call', 'GET', '/api/v1/tasks?limit=1', '--url', api.url];
    const viaEnv = await runCli('taskapi', list, 30_000, { TASKMANAGER_TOKEN: api.token! });
    expect([viaEnv.code, viaEnv.stdout]).toEqual([0, expect.stringMatching(/^200 OK\n\{/)]);
    // Synchronous: the child is gone when this returns, whatever happened (timeout included).
    const viaStdin = spawnSync(
      process.execPath,
      [join(ROOT, 'dist/src/api/cli.js'), ...list, '--token-stdin'],
      {
        input: `${api.token!}\n`,
        env: { ...process.env, TASKMANAGER_TOKEN: '' },
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    expect([viaStdin.status, viaStdin.stdout], viaStdin.stderr).toEqual([
      0,
      expect.stringMatching(/^200 OK\n\{/),
    ]);
    // The process list shows arguments to every user of the host: the flag's value form is refused, with the way.
    const viaFlag = await runCli('taskapi', [...list, '--token', api.token!]);
    expect([viaFlag.code, viaFlag.output]).toEqual([
      2,
      expect.stringMatching(/--token puts the token in the process list.*TASKMANAGER_TOKEN.*--token-stdin/),
    ]);
    expect(viaFlag.output).not.toContain('200 OK');
    const none = await runCli('taskapi', list, 30_000, { TASKMANAGER_TOKEN: '' });
    expect([none.code, none.output]).toEqual([1, expect.stringContaining('401 Unauthorized')]);
    expect(none.output).toContain('no token was sent: set TASKMANAGER_TOKEN, or pipe one to --token-stdin');
  });
});

describe('taskapi logins', () => {
  afterEach(killAll);

  it('should answer the same for an unknown user and a wrong password, and rate-limit failures per user and address', async () => {
    const api = await startApi([]);
    const u = await addUser(api, 'viewer');
    const attempt = (username: string, password: string) =>
      api.call<{ detail: string; title: string }>(
        'POST',
        '/api/v1/users/login',
        { username, password },
        {},
        { token: null },
      );
    const unknown = await attempt(uniqueName('nobody'), 'whatever-password');
    const wrong = await attempt(u.name, 'wrong-password');
    expect([unknown.status, unknown.body.detail]).toEqual([wrong.status, wrong.body.detail]);
    expect(wrong.status).toBe(401);
    for (let i = 0; i < 4; i++) expect((await attempt(u.name, 'wrong-password')).status).toBe(401);
    // Five failures: even the right password waits now, and says how long.
    const limited = await attempt(u.name, PASSWORD);
    expect(limited.status, limited.text).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another user from the same address is not locked out by it.
    const other = await addUser(api, 'viewer');
    expect(other.token).toBeTruthy();
  });

  it('should refuse sign-up unless allowed, and then make viewers', async () => {
    const closed = await startApi([]);
    const body = { username: uniqueName('self'), password: 'self-signed-up' };
    expect((await closed.call('POST', '/api/v1/users/signup', body, {}, { token: null })).status).toBe(403);
    const open = await startApi(['--allow-signup']);
    const made = await open.call<{ role: string }>('POST', '/api/v1/users/signup', body, {}, { token: null });
    expect([made.status, made.body.role]).toEqual([201, 'viewer']);
    expect(await open.login(body.username, body.password)).toBeTruthy();
  });
});

describe('two taskapi instances and a revoked API token', () => {
  afterEach(killAll);

  it('should refuse the token on the other instance within seconds', async () => {
    const [a, b] = await Promise.all([startApi([]), startApi([])]);
    const made = await a!.call<{ id: string; token: string }>('POST', '/api/v1/tokens', {
      name: 'automation',
    });
    expect(made.status, made.text).toBe(201);
    const viaB = () => b!.call('GET', '/api/v1/tasks?limit=1', undefined, {}, { token: made.body.token });
    let last = '';
    await waitFor(
      async () => {
        const r = await viaB();
        last = `${r.status} ${r.text.slice(0, 300)}`;
        return r.status === 200;
      },
      { timeoutMs: 5000, what: 'the token working on B' },
    ).catch((err: Error) => {
      throw new Error(`${err.message}: last answer ${last}`);
    });
    expect((await a!.call('DELETE', `/api/v1/tokens/${made.body.id}`)).status).toBe(204);
    const t0 = Date.now();
    await waitFor(async () => (await viaB()).status === 401, {
      timeoutMs: 5000,
      what: 'B refusing the revoked token',
    });
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

describe('secrets', () => {
  afterEach(killAll);

  it('should never show a password or token in logs, events, error bodies, the users topic or metrics', async () => {
    const api = await startApi(['--metrics-port', '0', '--log-level', 'debug']);
    const auditFrom = await offsetsOf('taskmanager.audit');
    const password = `Secret-${uniqueName('pw')}`;
    const u = await addUser(api, 'operator', password);
    const made = await api.call<{ token: string }>(
      'POST',
      '/api/v1/tokens',
      { name: 'leak-check' },
      {},
      { token: u.token },
    );
    const secret = made.body.token;
    const bodies: string[] = [made.text.replace(secret, '<shown once>')];
    // Failures that might echo what was sent, and a change recorded with the acting user.
    for (const r of await Promise.all([
      api.call(
        'POST',
        '/api/v1/users/login',
        { username: u.name, password: `${password}x` },
        {},
        { token: null },
      ),
      api.call('POST', '/api/v1/users/login', { username: password, password }, {}, { token: null }),
      api.call(
        'POST',
        '/api/v1/users/login',
        { username: u.name, password, extra: password },
        {},
        { token: null },
      ),
      api.call('POST', '/api/v1/users', { username: u.name, password, role: 'admin' }),
      api.call('PUT', `/api/v1/users/${u.name}`, { password: 'short' }, {}, { token: u.token }),
      api.call('GET', '/api/v1/tasks', undefined, {}, { token: `${secret}x` }),
      api.call('GET', '/api/v1/users', undefined, {}, { token: secret }),
      api.call(
        'POST',
        '/api/v1/tasks',
        { processor: 'p', schedule: { every: '1h' }, enabled: false },
        {},
        { token: secret },
      ),
    ]))
      bodies.push(r.text);
    const metrics = await (await fetch(`${await opsUrl(api.cli)}/metrics`)).text();
    // The task created with the API token: its audit event names the user and the token id, never the secret.
    const records = await waitFor(
      async () => {
        const all = [
          ...(await readRange('taskmanager.users')),
          ...(await readRange('taskmanager.tasks')),
          ...(await readRange('taskmanager.audit', auditFrom)),
        ];
        const audited = all.some(
          (r) => r.includes('"action":"task.created"') && r.includes(`"user":"${u.name} (token `),
        );
        return all.some((r) => r.includes(`"kind":"user","name":"${u.name}"`)) && audited ? all : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: 'the new user and the audit event of the task it created' },
    );
    const places: Record<string, string> = {
      logs: api.cli.output,
      'error bodies': bodies.join('\n'),
      metrics,
      'users, tasks and audit topics': records.join('\n'),
    };
    for (const [where, text] of Object.entries(places)) {
      expect(text.includes(password), `the password in ${where}`).toBe(false);
      expect(text.includes(secret.slice(-20)), `the API token in ${where}`).toBe(false);
      expect(text.includes(u.token.split('.')[2]!), `the access token in ${where}`).toBe(false);
    }
    expect(records.join('\n')).toContain('scrypt$');
  });
});
