import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstAdminToken } from '../../../bench/lib/first-admin.js';
import { brokers } from './kafka.js';
import { startCli } from './processes.js';
import { scheduleFile } from './tasks.js';
import type { RunningCli } from './processes.js';
import { waitFor } from '../../kit/wait.js';

export interface ApiAnswer<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/**
 * The admin every test logs in as. Test files run side by side against one broker and one `taskmanager.users`:
 * the first taskapi to start creates it (TASKAPI_ADMIN_USER, with `initialPassword`), the first login changes that
 * to `password` (taskapi asks for it), the others find it, so all share these credentials.
 */
export const TEST_ADMIN = {
  username: 'test-admin',
  initialPassword: 'test-admin-initial-password',
  password: 'test-admin-password',
} as const;

/** One data directory per test process: instances started by one test share their generated signing key. */
export const DATA_DIR = mkdtempSync(join(tmpdir(), 'taskapi-data-'));

/** A started `taskapi` (the built CLI on a free port) and a small client for it. */
export class Api {
  /** Sent as the bearer token unless a call says otherwise. */
  token: string | undefined;

  constructor(
    readonly cli: RunningCli,
    readonly url: string,
  ) {}

  async call<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    /** `null`: no Authorization header. */
    { token = this.token }: { token?: string | null } = {},
  ): Promise<ApiAnswer<T>> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(token === undefined || token === null ? {} : { authorization: `Bearer ${token}` }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    let parsed: unknown = undefined;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, headers: res.headers, body: parsed as T, text };
  }

  /** An access token for a user (POST /api/v1/users/login). */
  async login(username: string, password: string): Promise<string> {
    const r = await this.call<{ accessToken: string }>(
      'POST',
      '/api/v1/users/login',
      { username, password },
      {},
      { token: null },
    );
    if (r.status !== 200) throw new Error(`login of ${username}: ${r.status} ${r.text}`);
    return r.body.accessToken;
  }
}

/**
 * Starts `taskapi --port 0` with the given flags, waits until it listens and logs in as {@link TEST_ADMIN} (changing
 * its initial password if nobody did yet);
 * `--history 1m` keeps starts quick.
 */
export async function startApi(args: string[], env: Record<string, string> = {}): Promise<Api> {
  const cli = startCli(
    'taskapi',
    ['-b', brokers(), '--port', '0', '--history', '1m', '--data-dir', DATA_DIR, ...args],
    {
      env: {
        TASKAPI_ADMIN_USER: TEST_ADMIN.username,
        TASKAPI_ADMIN_PASSWORD: TEST_ADMIN.initialPassword,
        ...env,
      },
    },
  );
  let url = '';
  await waitFor(
    () => {
      const m = /taskapi listening on (http:\/\/[^/\s]+)\//.exec(cli.output);
      if (m) url = m[1]!;
      return m !== null;
    },
    { timeoutMs: 60_000, what: () => `taskapi listening\n${cli.output.slice(-2000)}` },
  );
  const api = new Api(cli, url);
  api.token = await firstAdminToken(url, TEST_ADMIN);
  return api;
}

/**
 * Starts a `taskscheduler` of `group` with a schedule file holding one entry (`id`, once a year on 1 January) for
 * `topic`, and waits until `api` reports the instance that owns it (so that its schedule commands reach it).
 */
export async function startFileScheduler(api: Api, topic: string, group: string, id: string): Promise<void> {
  const file = await scheduleFile(topic, [[id, '0 0 1 1 *']]);
  startCli('taskscheduler', ['-b', brokers(), '-s', file, '--group', group]);
  await waitFor(
    async () =>
      (await api.call<{ owner?: string }>('GET', `/api/v1/schedules/${group}/${id}`)).body.owner !==
      undefined,
    { timeoutMs: 30_000, what: 'the scheduler reporting its file entry' },
  );
}

/** An API task that never fires by itself (disabled): a test publishes its runs, as a scheduler would. */
export async function heldTask(api: Api, id: string, processor: string): Promise<void> {
  const made = await api.call('POST', '/api/v1/tasks', {
    id,
    processor,
    schedule: { every: '1h' },
    enabled: false,
  });
  if (made.status !== 201) throw new Error(`POST /api/v1/tasks ${id}: ${made.status} ${made.text}`);
}
