import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { ScryptOptions } from 'node:crypto';
import { AppError } from '../../shared/errors.js';

/** scrypt cost (N=2^15, r=8, p=1: ≈ 50–100 ms per hash here; 32 MiB of memory). */
const PARAMS = { N: 32768, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;

/** The shortest password taskapi takes, whatever it comes from (HTTP, stdin, TASKAPI_PASSWORD, TASKAPI_ADMIN_PASSWORD). */
export const MIN_PASSWORD_LENGTH = 8;
/** The longest (scrypt hashes any length; this bounds the work a request can ask for). */
export const MAX_PASSWORD_LENGTH = 1024;

/** Why a password is refused, or undefined when it is long enough (and not absurdly long). */
export function passwordProblem(password: string): string | undefined {
  if (password.length < MIN_PASSWORD_LENGTH)
    return `the password must have at least ${MIN_PASSWORD_LENGTH} characters`;
  if (password.length > MAX_PASSWORD_LENGTH)
    return `the password must have at most ${MAX_PASSWORD_LENGTH} characters`;
  return undefined;
}

/** The password, or a usage error naming where it came from (an environment variable, stdin) and why it is refused. */
export function checkedPassword(password: string, from: string): string {
  const problem = passwordProblem(password);
  if (problem) throw new AppError('USAGE', `${from}: ${problem}`);
  return password;
}

function derive(password: string, salt: Buffer, o: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(
      password.normalize('NFC'),
      salt,
      KEY_LENGTH,
      { ...o, maxmem: 128 * o.N! * o.r! * 2 },
      (err, key) => (err ? reject(err) : resolve(key)),
    ),
  );
}

/** `scrypt$N$r$p$salt$hash` (base64url), with a fresh 16-byte salt per user. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, PARAMS);
  return ['scrypt', PARAMS.N, PARAMS.r, PARAMS.p, salt.toString('base64url'), key.toString('base64url')].join(
    '$',
  );
}

/** Compares in constant time; a malformed stored hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64url');
  const key = await derive(password, Buffer.from(salt, 'base64url'), {
    N: Number(n),
    r: Number(r),
    p: Number(p),
  });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** A hash no password matches, checked when the user does not exist: a failed login costs the same either way. */
export const DUMMY_HASH = `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$${Buffer.alloc(16).toString('base64url')}$${Buffer.alloc(KEY_LENGTH).toString('base64url')}`;
