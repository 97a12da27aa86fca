import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { apiApp } from './helpers/api-app.js';
import type { ApiApp } from './helpers/api-app.js';
import { MemoryKafka } from './helpers/memory-kafka.js';

const PASSWORD = 'correct horse battery';

let running: ApiApp[] = [];
afterEach(async () => {
  await Promise.all(running.map((a) => a.close()));
  running = [];
});

async function start(o: Parameters<typeof apiApp>[0] = {}): Promise<ApiApp> {
  const api = await apiApp(o);
  running.push(api);
  return api;
}

/** One login from `address`: its status and Retry-After. */
async function login(api: ApiApp, username: string, password: string, address: string) {
  const r = await api.app.inject({
    method: 'POST',
    url: '/api/v1/users/login',
    payload: { username, password },
    remoteAddress: address,
  });
  return { status: r.statusCode, retryAfter: r.headers['retry-after'] };
}

describe('when many logins for one user arrive at once from one address', () => {
  it('should check at most the 5 passwords the limit allows, and answer the others 429 or 503 at once', async () => {
    const api = await start();
    await api.users.addUser('ops', PASSWORD, 'operator', 'test');
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => login(api, 'ops', 'wrong password', '10.0.0.1')),
    );
    const checked = answers.filter((a) => a.status === 401).length;
    expect(checked).toBeLessThanOrEqual(5);
    const others = answers.filter((a) => a.status !== 401);
    expect(others.every((a) => [429, 503].includes(a.status) && Number(a.retryAfter) > 0)).toBe(true);
  }, 30_000);
});

describe('when logins for many users arrive at once', () => {
  it('should hash at most 2 passwords at a time and answer the rest 503 with Retry-After instead of queueing them', async () => {
    const api = await start();
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => login(api, `user${i}`, 'wrong password', `10.0.1.${i}`)),
    );
    const busy = answers.filter((a) => a.status === 503);
    expect(answers.filter((a) => a.status === 401)).toHaveLength(2);
    expect(busy).toHaveLength(8);
    expect(busy.every((a) => a.retryAfter === '1')).toBe(true);
  }, 30_000);
});

describe('when one user name fails from many addresses', () => {
  it('should refuse the 11th attempt within 15 minutes, from a new address, the right password too', async () => {
    const api = await start();
    await api.users.addUser('ops', PASSWORD, 'operator', 'test');
    for (let i = 0; i < 10; i++)
      expect((await login(api, 'ops', 'wrong password', `10.0.2.${i}`)).status).toBe(401);
    const next = await login(api, 'ops', PASSWORD, '10.0.2.200');
    expect(next.status).toBe(429);
    expect(Number(next.retryAfter)).toBeGreaterThan(890);
    // Another name is not held back by it.
    await api.users.addUser('dev', PASSWORD, 'operator', 'test');
    expect((await login(api, 'dev', PASSWORD, '10.0.2.200')).status).toBe(200);
  }, 30_000);
});

describe('when taskapi runs as several instances', () => {
  it('should count failures made on one instance on the other', async () => {
    const kafka = new MemoryKafka();
    const dataDir = mkdtempSync(join(tmpdir(), 'taskapi-keys-'));
    const [a, b] = [await start({ kafka, dataDir }), await start({ kafka, dataDir })];
    await a!.users.addUser('ops', PASSWORD, 'operator', 'test');
    for (let i = 0; i < 5; i++)
      expect((await login(a!, 'ops', 'wrong password', '10.0.3.1')).status).toBe(401);
    const onB = await login(b!, 'ops', PASSWORD, '10.0.3.1');
    expect(onB.status).toBe(429);
  });
});

describe('when logins succeed', () => {
  it('should not count them: 21 from one address are all let in, and a failure after them is a 401', async () => {
    const api = await start();
    await api.users.addUser('ops', PASSWORD, 'operator', 'test');
    for (let i = 0; i < 21; i++) expect((await login(api, 'ops', PASSWORD, '10.0.4.1')).status).toBe(200);
    expect((await login(api, 'ops', 'wrong password', '10.0.4.1')).status).toBe(401);
  }, 30_000);
});

describe('when sign-up is on', () => {
  const signup = (api: ApiApp, username: string, password: string, address = '10.0.5.1') =>
    api.app.inject({
      method: 'POST',
      url: '/api/v1/users/signup',
      payload: { username, password },
      remoteAddress: address,
    });

  it('should answer a taken name as it answers a free one, and change nothing of the user who has it', async () => {
    const api = await start({ allowSignup: true });
    await api.users.addUser('taken', PASSWORD, 'admin', 'test');
    const [free, taken] = [
      await signup(api, 'free', 'some password'),
      await signup(api, 'taken', 'some password'),
    ];
    const shape = (r: typeof free) => {
      const { name, createdAt, updatedAt, createdBy, ...rest } = r.json<Record<string, string>>();
      return {
        status: r.statusCode,
        rest,
        keys: Object.keys(r.json()).sort(),
        name,
        times: typeof createdAt === typeof updatedAt,
        by: createdBy?.replace(name ?? '', 'NAME'),
      };
    };
    expect({ ...shape(taken), name: 'free' }).toEqual(shape(free));
    expect((await login(api, 'taken', PASSWORD, '10.0.5.2')).status).toBe(200);
    expect((await login(api, 'taken', 'some password', '10.0.5.2')).status).toBe(401);
    expect(api.users.view.user('taken')?.user.role).toBe('admin');
  });

  it('should take 5 sign-ups from one address an hour, then answer 429 with Retry-After', async () => {
    const api = await start({ allowSignup: true });
    for (let i = 0; i < 5; i++) expect((await signup(api, `self${i}`, 'some password')).statusCode).toBe(201);
    const sixth = await signup(api, 'self5', 'some password');
    expect(sixth.statusCode).toBe(429);
    expect(Number(sixth.headers['retry-after'])).toBeGreaterThan(3500);
    expect(api.users.view.user('self5')).toBeUndefined();
    expect((await signup(api, 'self6', 'some password', '10.0.5.9')).statusCode).toBe(201);
  });
});

describe('when the users topic holds login attempts', () => {
  it('should hold neither the names tried (a password typed as one) nor the addresses', async () => {
    const api = await start();
    await login(api, 'Secret-typed-as-a-name', 'wrong password', '10.0.6.77');
    const topic = (api.kafka.topics.get('taskmanager.users') ?? [])
      .map((r) => `${r.key?.toString() ?? ''} ${r.value?.toString() ?? ''}`)
      .join('\n');
    expect(topic).toContain('attempts:');
    expect(topic).not.toContain('Secret-typed-as-a-name');
    expect(topic).not.toContain('10.0.6.77');
  });
});

describe('when a user changes their own password', () => {
  it('should count a wrong currentPassword as a failed login, so a stolen access token cannot guess on', async () => {
    const api = await start();
    await api.users.addUser('ops', PASSWORD, 'operator', 'test');
    const token = String((await api.login('ops', PASSWORD)).body.accessToken);
    const change = (currentPassword: string) =>
      api.app.inject({
        method: 'PUT',
        url: '/api/v1/users/ops',
        headers: { authorization: `Bearer ${token}` },
        payload: { currentPassword, password: 'a new password' },
        remoteAddress: '10.0.7.1',
      });
    for (let i = 0; i < 5; i++) expect((await change(`guess ${i}`)).statusCode).toBe(403);
    const sixth = await change(PASSWORD);
    expect([sixth.statusCode, Number(sixth.headers['retry-after']) > 0]).toEqual([429, true]);
  }, 30_000);
});
