import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { GENERATED_KEY_FILE, loadSigningKeys } from '../../src/api/auth/signing-keys.js';
import { callToken } from '../../src/api/call-command.js';
import { ensureFirstAdmin, firstAdminFromEnv } from '../../src/api/serve.js';
import { readPassword } from '../../src/api/users-command.js';
import { silentLogger } from '../../src/shared/logger.js';
import { apiApp } from './helpers/api-app.js';
import type { ApiApp } from './helpers/api-app.js';

const ROOT = resolve(import.meta.dirname, '../..');

let running: ApiApp | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

/** Runs `fn` with these environment variables set (undefined: unset), then puts them back. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const put = (v: Record<string, string | undefined>) => {
    for (const [k, value] of Object.entries(v))
      if (value === undefined) delete process.env[k];
      else process.env[k] = value;
  };
  put(vars);
  try {
    return await fn();
  } finally {
    put(saved);
  }
}

describe('when taskapi creates the first admin from its environment', () => {
  it('should refuse everything but changing that password until the admin changed it, then work as usual', async () => {
    running = await apiApp();
    const { app, users, login } = running;
    await ensureFirstAdmin(users, { name: 'admin', password: 'change-me-now' }, silentLogger);
    const first = await login('admin', 'change-me-now');
    expect([first.status, first.body.passwordChangeRequired]).toEqual([200, true]);
    const as = (token: unknown) => ({ authorization: `Bearer ${String(token)}` });

    const refused = await app.inject({
      method: 'GET',
      url: '/api/v1/users',
      headers: as(first.body.accessToken),
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(refused.json<{ detail: string }>().detail).toMatch(
      /^admin must change the password first .*PUT \/api\/v1\/users\/admin/,
    );
    const change = (password: string) =>
      app.inject({
        method: 'PUT',
        url: '/api/v1/users/admin',
        headers: as(first.body.accessToken),
        payload: { currentPassword: 'change-me-now', password },
      });
    expect((await change('change-me-now')).statusCode).toBe(400);
    expect((await change('my-own-long-password')).statusCode).toBe(200);

    const again = await login('admin', 'my-own-long-password');
    expect([again.status, again.body.passwordChangeRequired]).toEqual([200, undefined]);
    const listed = await app.inject({
      method: 'GET',
      url: '/api/v1/users',
      headers: as(again.body.accessToken),
    });
    expect(listed.statusCode).toBe(200);
  });

  it('should refuse a TASKAPI_ADMIN_PASSWORD under 8 characters before it connects to Kafka', () => {
    expect(() => firstAdminFromEnv({ TASKAPI_ADMIN_USER: 'admin', TASKAPI_ADMIN_PASSWORD: 'short' })).toThrow(
      'TASKAPI_ADMIN_PASSWORD: the password must have at least 8 characters',
    );
    expect(firstAdminFromEnv({ TASKAPI_ADMIN_USER: 'admin', TASKAPI_ADMIN_PASSWORD: 'long-enough' })).toEqual(
      {
        name: 'admin',
        password: 'long-enough',
      },
    );
  });
});

describe('when a password under the minimum length comes from elsewhere', () => {
  it('should refuse it in TASKAPI_PASSWORD for taskapi users add', async () => {
    await expect(withEnv({ TASKAPI_PASSWORD: 'short' }, readPassword)).rejects.toThrow(
      'TASKAPI_PASSWORD: the password must have at least 8 characters',
    );
  });

  it('should refuse it in the user store, whatever calls it', async () => {
    running = await apiApp();
    await expect(running.users.addUser('bob', 'short', 'viewer', 'test')).rejects.toThrow(
      'the password must have at least 8 characters',
    );
    expect(running.users.view.user('bob')).toBeUndefined();
  });
});

describe('when the JWT key file can be read by other users', () => {
  const keyFile = (mode: number): string => {
    const file = join(mkdtempSync(join(tmpdir(), 'jwt-')), 'key.pem');
    writeFileSync(
      file,
      generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    );
    chmodSync(file, mode);
    return file;
  };

  it('should refuse to start, naming the file and the chmod to run', async () => {
    const file = keyFile(0o644);
    await expect(
      loadSigningKeys({ keyFile: file, dataDir: tmpdir(), previousKeyFiles: [] }, silentLogger),
    ).rejects.toThrow(`JWT key file ${file} can be read by other users (mode 0644): run chmod 600 ${file}`);
  });

  it('should refuse a generated key made readable later, and a previous key file too', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'jwt-data-'));
    await loadSigningKeys({ dataDir, previousKeyFiles: [] }, silentLogger);
    chmodSync(join(dataDir, GENERATED_KEY_FILE), 0o640);
    await expect(loadSigningKeys({ dataDir, previousKeyFiles: [] }, silentLogger)).rejects.toThrow(
      /chmod 600/,
    );
    const previous = keyFile(0o604);
    await expect(
      loadSigningKeys({ keyFile: keyFile(0o600), dataDir, previousKeyFiles: [previous] }, silentLogger),
    ).rejects.toThrow(`run chmod 600 ${previous}`);
  });
});

describe('when taskapi call is given a token', () => {
  const stdin = (text: string) => async () => {
    let all = '';
    for await (const chunk of Readable.from([text])) all += String(chunk);
    return all.split('\n')[0] ?? '';
  };

  it('should refuse --token VALUE (the process list shows it), saying where a token goes instead', async () => {
    await expect(callToken({ token: 'tmk_secret' }, {}, stdin(''))).rejects.toThrow(
      /--token puts the token in the process list.*TASKMANAGER_TOKEN.*--token-stdin/,
    );
  });

  it('should take the first line of stdin with --token-stdin, else TASKMANAGER_TOKEN, else none', async () => {
    expect(await callToken({ tokenStdin: true }, { TASKMANAGER_TOKEN: 'env' }, stdin('piped\nrest'))).toBe(
      'piped',
    );
    expect(await callToken({}, { TASKMANAGER_TOKEN: 'env' }, stdin('piped'))).toBe('env');
    expect(await callToken({}, { TASKMANAGER_TOKEN: '' }, stdin('piped'))).toBeUndefined();
    await expect(callToken({ tokenStdin: true }, {}, stdin('\n'))).rejects.toThrow(/stdin held no token/);
  });
});

describe('the docker compose file', () => {
  const compose = readFileSync(resolve(ROOT, 'docker-compose.yml'), 'utf8');

  it('should take the admin password from an uncommitted .env and refuse to start without one', () => {
    expect(compose).not.toMatch(/change-me-now/);
    expect(compose).toMatch(/^\s+TASKAPI_ADMIN_PASSWORD: '\$\{TASKAPI_ADMIN_PASSWORD:\?[^}]*\.env[^}]*\}'$/m);
    expect(readFileSync(resolve(ROOT, '.gitignore'), 'utf8').split('\n')).toContain('.env');
    expect(readFileSync(resolve(ROOT, '.dockerignore'), 'utf8').split('\n')).toContain('.env');
    const example = resolve(ROOT, '.env.example');
    expect(existsSync(example)).toBe(true);
    // Empty: a copy nobody filled in fails like no file at all.
    expect(readFileSync(example, 'utf8')).toMatch(/^TASKAPI_ADMIN_PASSWORD=$/m);
  });

  it('should publish taskapi and the broker on this host’s loopback only', () => {
    const published = [...compose.matchAll(/^\s+- '([^']*:\d+)'$/gm)].map((m) => m[1]);
    expect(published.length).toBeGreaterThan(0);
    expect(published.filter((p) => !p?.startsWith('127.0.0.1:'))).toEqual([]);
  });
});
