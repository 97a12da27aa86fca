/**
 * Logging in as the admin a taskapi created from TASKAPI_ADMIN_USER / TASKAPI_ADMIN_PASSWORD. taskapi refuses that
 * admin everything but a password change until it changed the password it was given, so the first login changes it
 * to the caller's own; every later login (other instances, other test files on the same broker) uses that one.
 */
import { sleep } from '../../test/kit/wait.js';

export interface FirstAdmin {
  username: string;
  /** What taskapi was started with (TASKAPI_ADMIN_PASSWORD). */
  initialPassword: string;
  /** What the first login changes it to, and every login uses after. */
  password: string;
}

async function post(
  url: string,
  body: unknown,
  method = 'POST',
  token?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/**
 * An access token for `admin` from the taskapi at `base`, changing its initial password first when taskapi asks
 * for that. Several callers at once (test files side by side, instances that have not read the change yet) are
 * fine: whoever loses the race to change it logs in with the new password on the next round.
 */
export async function firstAdminToken(base: string, admin: FirstAdmin): Promise<string> {
  const login = (password: string) =>
    post(`${base}/api/v1/users/login`, { username: admin.username, password });
  let last = '';
  for (let round = 0; round < 4; round++) {
    const done = await login(admin.password);
    if (done.status === 200 && !done.body.passwordChangeRequired) return String(done.body.accessToken);
    const first = await login(admin.initialPassword);
    last = `${done.status} / ${first.status} ${JSON.stringify(first.body)}`;
    if (first.status === 200 && first.body.passwordChangeRequired) {
      const changed = await post(
        `${base}/api/v1/users/${admin.username}`,
        { currentPassword: admin.initialPassword, password: admin.password },
        'PUT',
        String(first.body.accessToken),
      );
      last = `password change: ${changed.status} ${JSON.stringify(changed.body)}`;
    }
    // Taking a change made through another instance into this one's view takes a moment.
    await sleep(200);
  }
  throw new Error(`cannot log in as ${admin.username} at ${base}: ${last}`);
}

/**
 * A long-lived API token for the admin (what a service calling taskapi uses): unlike an access token it does not
 * expire during a long benchmark (a million creates take over ten minutes).
 */
export async function firstAdminApiToken(base: string, admin: FirstAdmin, name: string): Promise<string> {
  const created = await post(`${base}/api/v1/tokens`, { name }, 'POST', await firstAdminToken(base, admin));
  if (created.status !== 201 || typeof created.body.token !== 'string')
    throw new Error(
      `cannot create an API token at ${base}: ${created.status} ${JSON.stringify(created.body)}`,
    );
  return created.body.token;
}
