import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/api/auth/authenticator.js';
import { AttemptLedger } from '../../src/api/auth/attempt-ledger.js';
import { LoginLimiter } from '../../src/api/auth/login-limiter.js';
import type { AttemptLog } from '../../src/api/auth/login-limiter.js';
import { hashPassword, verifyPassword } from '../../src/api/auth/passwords.js';
import { loadSigningKeys } from '../../src/api/auth/signing-keys.js';
import { API_TOKEN_PREFIX, sha256 } from '../../src/api/auth/user-store.js';
import { tokenKey, userKey, UserView } from '../../src/api/auth/user-view.js';
import type { TokenRecord, UserRecord } from '../../src/api/auth/user-view.js';
import { ApiError } from '../../src/api/problem.js';
import { silentLogger } from '../../src/shared/logger.js';
import { FakeClock } from './helpers/fake-clock.js';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');

function record(key: string, value: object, offset: number) {
  return {
    topic: 'taskmanager.users',
    partition: 0,
    offset: String(offset),
    key: Buffer.from(key),
    value: Buffer.from(JSON.stringify(value)),
    headers: {},
    timestamp: '0',
  };
}

async function setup() {
  const clock = new FakeClock(T0);
  const view = new UserView(silentLogger);
  const user: UserRecord = {
    v: 1,
    kind: 'user',
    name: 'ops',
    role: 'operator',
    passwordHash: await hashPassword('correct horse'),
    createdAt: 'x',
    updatedAt: 'x',
  };
  view.onRecord(record(userKey('ops'), user, 0));
  const keys = await loadSigningKeys(
    { dataDir: mkdtempSync(join(tmpdir(), 'keys-')), previousKeyFiles: [] },
    silentLogger,
  );
  return { clock, view, auth: new Authenticator(view, keys, clock, 900) };
}

const status = (p: Promise<unknown>) =>
  p.then(
    () => 200,
    (err: unknown) => (err instanceof ApiError ? err.status : -1),
  );

describe('when authenticating bearer tokens', () => {
  it('should accept an API token whose secret contains underscores (base64url), and refuse one changed by a character', async () => {
    const { view, auth } = await setup();
    const secret = 'ab_cd-ef_gh';
    const token: TokenRecord = {
      v: 1,
      kind: 'token',
      id: '0123456789ab',
      user: 'ops',
      name: 'ci',
      hash: sha256(secret),
      createdAt: 'x',
      createdBy: 'ops',
    };
    view.onRecord(record(tokenKey(token.id), token, 1));
    await expect(auth.authenticate(`Bearer ${API_TOKEN_PREFIX}${token.id}_${secret}`)).resolves.toMatchObject(
      {
        user: 'ops',
        role: 'operator',
        tokenId: token.id,
      },
    );
    expect(await status(auth.authenticate(`Bearer ${API_TOKEN_PREFIX}${token.id}_${secret}x`))).toBe(401);
  });

  it('should refuse an access token once it expired, even one it verified before', async () => {
    const { clock, auth } = await setup();
    const login = await auth.login('ops', 'correct horse');
    expect(await status(auth.authenticate(`Bearer ${login!.accessToken}`))).toBe(200);
    clock.set(T0 + 901_000);
    expect(await status(auth.authenticate(`Bearer ${login!.accessToken}`))).toBe(401);
  });

  it('should give nothing for a wrong password or an unknown user', async () => {
    const { auth } = await setup();
    expect(await auth.login('ops', 'wrong')).toBeUndefined();
    expect(await auth.login('nobody', 'correct horse')).toBeUndefined();
  });
});

describe('when hashing passwords', () => {
  it('should salt each hash and verify only the right password', async () => {
    const [a, b] = await Promise.all([hashPassword('pw-123456'), hashPassword('pw-123456')]);
    expect(a).not.toBe(b);
    expect(await verifyPassword('pw-123456', a)).toBe(true);
    expect(await verifyPassword('pw-1234567', a)).toBe(false);
    expect(await verifyPassword('pw-123456', 'garbage')).toBe(false);
  });
});

describe('when limiting failed logins', () => {
  /**
   * `taskmanager.users` as far as attempts go: one log, and per instance a ledger that reads it only when that instance
   * writes (so an instance's view lags the others' attempts until then, as it may in Kafka).
   */
  function attemptsTopic(clock: FakeClock) {
    const log: Array<{ key: string; value: object | null; writer: string }> = [];
    const written: string[] = [];
    const instance = (writer: string) => {
      const ledger = new AttemptLedger(silentLogger);
      let read = 0;
      const catchUp = () => {
        let last = { kind: 'ignored' } as ReturnType<AttemptLedger['onRecord']>;
        for (; read < log.length; read++) {
          const { key, value, writer: by } = log[read]!;
          last = ledger.onRecord(key, {
            ...record(key, {}, read),
            value: value === null ? null : Buffer.from(JSON.stringify(value)),
            headers: { 'tm-writer': by },
          });
        }
        return last;
      };
      const attempts: AttemptLog = {
        ledger,
        writerId: writer,
        write: (key, value) => {
          log.push({ key, value, writer });
          written.push(value === null ? `remove ${key}` : `${(value as { kind: string }).kind} ${key}`);
          return Promise.resolve(catchUp());
        },
      };
      return new LoginLimiter({ log: attempts, clock, logger: silentLogger, secret: Buffer.alloc(32) });
    };
    return { instance, written };
  }
  const fail = () => Promise.resolve(undefined);
  const refused = (p: Promise<unknown>) => expect(p).rejects.toThrow(/too many failed logins/);

  it('should stop a user at one address after 5 failures for 15 minutes, and not others', async () => {
    const clock = new FakeClock(T0);
    const limits = attemptsTopic(clock).instance('a');
    for (let i = 0; i < 5; i++) await limits.login('ops', '10.0.0.1', fail);
    await expect(limits.login('ops', '10.0.0.1', fail)).rejects.toThrow(
      /too many failed logins: try again in 900 s/,
    );
    await limits.login('ops', '10.0.0.2', fail);
    await limits.login('dev', '10.0.0.1', fail);
    clock.set(T0 + 15 * 60_000);
    await limits.login('ops', '10.0.0.1', fail);
  });

  it('should refuse an attempt another instance’s failures put over a limit, and count it under no other limit', async () => {
    const topic = attemptsTopic(new FakeClock(T0));
    const [a, b] = [topic.instance('a'), topic.instance('b')];
    for (let i = 0; i < 5; i++) await a.login('ops', '10.0.0.1', fail);
    // b has not read a's failures: its own check lets the attempt through, the log's order refuses it.
    await refused(b.login('ops', '10.0.0.1', fail));
    // Had it counted for the name, its limit of 10 would be reached one failure earlier.
    for (let i = 2; i <= 6; i++) await b.login('ops', `10.0.0.${i}`, fail);
    await refused(b.login('ops', '10.0.0.7', fail));
  });

  it('should remove from the topic the counters it wrote once they are idle past their window', async () => {
    const clock = new FakeClock(T0);
    const topic = attemptsTopic(clock);
    const limits = topic.instance('a');
    await limits.login('ops', '10.0.0.1', fail);
    await limits.sweep();
    expect(topic.written.filter((w) => w.startsWith('remove'))).toEqual([]);
    clock.set(T0 + 15 * 60_000 + 61_000);
    await limits.sweep();
    expect(topic.written.filter((w) => w.startsWith('remove'))).toHaveLength(3);
    await limits.login('ops', '10.0.0.1', fail);
  });
});
