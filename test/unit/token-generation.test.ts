import { afterEach, describe, expect, it } from 'vitest';
import { apiApp } from './helpers/api-app.js';
import type { ApiApp } from './helpers/api-app.js';

const PASSWORD = 'correct horse battery';

let running: ApiApp | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

/** An app with an admin and an operator `bob`, bob's access token and an API token of his. */
async function withBob() {
  running = await apiApp();
  const api = running;
  await api.users.addUser('root', PASSWORD, 'admin', 'test');
  await api.users.addUser('bob', PASSWORD, 'operator', 'test');
  const admin = String((await api.login('root', PASSWORD)).body.accessToken);
  const jwt = String((await api.login('bob', PASSWORD)).body.accessToken);
  const made = await api.app.inject({
    method: 'POST',
    url: '/api/v1/tokens',
    headers: { authorization: `Bearer ${jwt}` },
    payload: { name: 'ci' },
  });
  expect(made.statusCode).toBe(201);
  const apiToken = made.json<{ token: string }>().token;
  /** The status of GET /api/v1/users/bob with this token. */
  const status = async (token: string) =>
    (
      await api.app.inject({
        method: 'GET',
        url: '/api/v1/users/bob',
        headers: { authorization: `Bearer ${token}` },
      })
    ).statusCode;
  const asAdmin = (method: 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
    api.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${admin}` },
      ...(payload ? { payload } : {}),
    });
  expect([await status(jwt), await status(apiToken)]).toEqual([200, 200]);
  return { api, jwt, apiToken, status, asAdmin };
}

describe('when a password changes', () => {
  it('should end the API tokens made before it, as it ends access tokens', async () => {
    const { api, jwt, apiToken, status } = await withBob();
    const changed = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/users/bob',
      headers: { authorization: `Bearer ${jwt}` },
      payload: { currentPassword: PASSWORD, password: 'a new password' },
    });
    expect(changed.statusCode).toBe(200);
    expect([await status(jwt), await status(apiToken)]).toEqual([401, 401]);
    const fresh = String((await api.login('bob', 'a new password')).body.accessToken);
    expect(await status(fresh)).toBe(200);
  });
});

describe('when a role changes', () => {
  it('should end every token of a user whose role is lowered', async () => {
    const { jwt, apiToken, status, asAdmin } = await withBob();
    expect((await asAdmin('PUT', '/api/v1/users/bob/role', { role: 'viewer' })).statusCode).toBe(200);
    expect([await status(jwt), await status(apiToken)]).toEqual([401, 401]);
  });

  it('should keep the tokens of a user whose role is raised, with the new role', async () => {
    const { api, jwt, apiToken, status, asAdmin } = await withBob();
    expect((await asAdmin('PUT', '/api/v1/users/bob/role', { role: 'admin' })).statusCode).toBe(200);
    expect([await status(jwt), await status(apiToken)]).toEqual([200, 200]);
    expect(api.users.view.user('bob')?.user.role).toBe('admin');
  });
});

describe('when a user is removed and made again with the same name', () => {
  it('should not let the removed user’s access token in', async () => {
    const { jwt, status, asAdmin } = await withBob();
    expect((await asAdmin('DELETE', '/api/v1/users/bob')).statusCode).toBe(204);
    const again = await asAdmin('POST', '/api/v1/users', {
      username: 'bob',
      password: PASSWORD,
      role: 'admin',
    });
    expect(again.statusCode).toBe(201);
    expect(await status(jwt)).toBe(401);
  });

  it('should leave no API token working when the removal stopped part way', async () => {
    const { api, apiToken, status, asAdmin } = await withBob();
    // Kafka refuses every write of a token record: the removal cannot revoke bob's token.
    const kafka = api.kafka as unknown as { append(r: { key: string | null }): unknown };
    const append = kafka.append.bind(kafka);
    kafka.append = (r) => {
      if (r.key?.startsWith('token:')) throw new Error('broker gone');
      return append(r);
    };
    expect((await asAdmin('DELETE', '/api/v1/users/bob')).statusCode).toBe(503);
    kafka.append = append;
    // The admin tries again (the user is gone already, or not) and makes bob again.
    await asAdmin('DELETE', '/api/v1/users/bob');
    expect(
      (await asAdmin('POST', '/api/v1/users', { username: 'bob', password: PASSWORD, role: 'operator' }))
        .statusCode,
    ).toBe(201);
    expect(await status(apiToken)).toBe(401);
  });

  it('should start the new user above the removed one’s generation', async () => {
    const { api, asAdmin } = await withBob();
    const before = api.users.view.user('bob')!.user.generation!;
    expect((await asAdmin('DELETE', '/api/v1/users/bob')).statusCode).toBe(204);
    await api.users.addUser('bob', PASSWORD, 'operator', 'test');
    expect(api.users.view.user('bob')!.user.generation).toBeGreaterThan(before);
  });
});
