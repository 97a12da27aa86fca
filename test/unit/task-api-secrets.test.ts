import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../src/api/auth/roles.js';
import { apiApp } from './helpers/api-app.js';
import type { ApiApp } from './helpers/api-app.js';

const PASSWORD = 'a-long-enough-password';

/** The real taskapi app over in-memory topics, with one user of each role and their access tokens (one per file). */
function useApi() {
  const fx = { api: undefined as unknown as ApiApp, tokens: {} as Record<Role, string> };
  beforeAll(async () => {
    fx.api = await apiApp();
    for (const role of ['viewer', 'operator', 'admin'] as const) {
      await fx.api.users.addUser(role, PASSWORD, role, 'test');
      const login = await fx.api.login(role, PASSWORD);
      fx.tokens[role] = login.body.accessToken as string;
    }
  });
  afterAll(() => fx.api.close());
  const call = async (role: Role, method: string, url: string, payload?: unknown) => {
    const r = await fx.api.app.inject({
      method: method as 'GET',
      url,
      headers: { authorization: `Bearer ${fx.tokens[role]}` },
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
    return { status: r.statusCode, body: r.json<Record<string, unknown>>() };
  };
  return { fx, call };
}

const PAYLOAD = {
  url: 'https://hooks.example.com/deploy',
  headers: { Authorization: 'Bearer abc123', 'X-Trace': 'visible' },
  body: {
    ref: 'main',
    db: { password: { $secret: 'DB_PASSWORD' }, host: 'db.internal' },
    keys: [{ api_key: 'k-1', name: 'first' }],
    ClientSecret: { nested: 'whole value goes' },
    accessToken: 'tok',
  },
};
const REDACTED_PAYLOAD = {
  url: 'https://hooks.example.com/deploy',
  headers: { Authorization: '[redacted]', 'X-Trace': 'visible' },
  body: {
    ref: 'main',
    db: { password: '[redacted]', host: 'db.internal' },
    keys: [{ api_key: '[redacted]', name: 'first' }],
    ClientSecret: '[redacted]',
    accessToken: '[redacted]',
  },
};

const { fx, call } = useApi();

describe('when a viewer reads a task whose payload has fields named like secrets', () => {
  let id = '';
  beforeAll(async () => {
    const r = await call('operator', 'POST', '/api/v1/tasks', {
      processor: 'webhook',
      schedule: { cron: '0 0 1 1 *' },
      enabled: false,
      payload: PAYLOAD,
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    id = r.body.id as string;
  });

  it('should show "[redacted]" in their place, in the task, the list and the old service’s view', async () => {
    expect((await call('viewer', 'GET', `/api/v1/tasks/${id}`)).body.payload).toEqual(REDACTED_PAYLOAD);
    const list = (await call('viewer', 'GET', '/api/v1/tasks?limit=10')).body.items as Array<{
      id: string;
      payload?: unknown;
    }>;
    const listed = list.find((t) => t.id === id)!;
    // The list may leave payloads out; when it shows one, a viewer's is redacted too.
    if (listed.payload !== undefined) expect(listed.payload).toEqual(REDACTED_PAYLOAD);
    expect((await call('viewer', 'GET', `/api/tasks/${id}`)).body.payload).toEqual(REDACTED_PAYLOAD);
  });

  it('should show operators and admins the stored payload, secret references as they are', async () => {
    for (const role of ['operator', 'admin'] as const)
      expect((await call(role, 'GET', `/api/v1/tasks/${id}`)).body.payload).toEqual(PAYLOAD);
  });
});

describe('when naming fields like secrets', () => {
  it('should catch the usual spellings, in any case, and leave look-alikes', async () => {
    const { isSecretField } = await import('../../src/api/secret-fields.js');
    const secret = [
      'token',
      'X-Auth-Token',
      'refresh_token',
      'PASSWORD',
      'smtpPassword',
      'passwd',
      'client_secret',
      'Authorization',
      'Proxy-Authorization',
      'api_key',
      'apiKey',
      'X-API-KEY',
      'Cookie',
      'Set-Cookie',
      'private_key',
      'privateKeyPem',
      'aws_access_key_id',
      'credentials',
      'auth',
      'pwd',
    ];
    const plain = ['author', 'url', 'compass', 'keys', 'monkey', 'description', 'host', 'pass_through_count'];
    expect(secret.filter((n) => !isSecretField(n))).toEqual([]);
    expect(plain.filter(isSecretField)).toEqual([]);
  });

  it('should return a payload with nothing to redact unchanged, the same object', async () => {
    const { redactSecretFields } = await import('../../src/api/secret-fields.js');
    const payload = { to: 'a@example.com', list: [1, { b: 2 }] };
    expect(redactSecretFields(payload)).toBe(payload);
  });
});

describe('when someone other than an admin writes a CommandProcessor task', () => {
  const command = (over: Record<string, unknown> = {}) => ({
    processor: 'CommandProcessor',
    schedule: { cron: '0 0 1 1 *' },
    enabled: false,
    payload: { command: ['true'] },
    ...over,
  });
  let commandTask = '';
  let noopTask = '';
  beforeAll(async () => {
    const a = await call('admin', 'POST', '/api/v1/tasks', command());
    const b = await call('operator', 'POST', '/api/v1/tasks', {
      processor: 'NoopProcessor',
      schedule: { cron: '0 0 1 1 *' },
      enabled: false,
    });
    expect([a.status, b.status], JSON.stringify([a.body, b.body])).toEqual([201, 201]);
    commandTask = a.body.id as string;
    noopTask = b.body.id as string;
  });

  it('should answer an operator 403 saying only an admin may create one, under any of its names and bodies', async () => {
    const tries = {
      'POST CommandProcessor': await call('operator', 'POST', '/api/v1/tasks', command()),
      'POST command': await call('operator', 'POST', '/api/v1/tasks', command({ processor: 'command' })),
      'POST a type path': await call(
        'operator',
        'POST',
        '/api/v1/tasks',
        command({ processor: 'github.com/acme/processor.CommandProcessor' }),
      ),
      'POST old v1 body': await call('operator', 'POST', '/api/v1/tasks', {
        name: 'command',
        type: 'once',
        payload: { command: ['true'] },
      }),
      'POST /api/tasks': await call('operator', 'POST', '/api/tasks', {
        task_type: 'command',
        payload: { command: ['true'] },
        run_at: '2099-01-01T00:00:00Z',
      }),
    };
    const got = Object.entries(tries).map(([what, r]) => `${what}: ${r.status} ${String(r.body.detail)}`);
    expect(got).toEqual(
      Object.keys(tries).map((what) =>
        expect.stringMatching(
          new RegExp(`^${what}: 403 task .* runs CommandProcessor .*only an admin may create or change it`),
        ),
      ),
    );
  });

  it('should refuse an operator changing one, or turning another task into one, and keep the task as it was', async () => {
    const put = await call('operator', 'PUT', `/api/v1/tasks/${commandTask}`, command({ enabled: true }));
    const patch = await call('operator', 'PATCH', `/api/v1/tasks/${commandTask}`, { enabled: true });
    const into = await call('operator', 'PATCH', `/api/v1/tasks/${noopTask}`, { processor: 'command' });
    expect([put.status, patch.status, into.status]).toEqual([403, 403, 403]);
    expect((await call('operator', 'GET', `/api/v1/tasks/${commandTask}`)).body.enabled).toBe(false);
    expect((await call('operator', 'GET', `/api/v1/tasks/${noopTask}`)).body.processor).toBe('NoopProcessor');
  });

  it('should let an admin change one, and an operator trigger it; a viewer neither', async () => {
    const patched = await call('admin', 'PATCH', `/api/v1/tasks/${commandTask}`, { name: 'nightly' });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    const before = fx.api.kafka.topics.get('taskTopic')?.length ?? 0;
    const fired = await call('operator', 'POST', `/api/v1/tasks/${commandTask}/trigger`);
    expect(fired.status, JSON.stringify(fired.body)).toBe(202);
    expect(fx.api.kafka.topics.get('taskTopic')?.length).toBe(before + 1);
    expect((await call('viewer', 'POST', `/api/v1/tasks/${commandTask}/trigger`)).status).toBe(403);
  });
});
