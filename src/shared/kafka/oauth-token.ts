import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { AppError, errorMessage } from '../errors.js';

export type TokenFrom = { command: string } | { file: string } | { unsecuredSubject: string };

/** Without a known expiry a token is fetched again this often. */
const DEFAULT_REFRESH_MS = 60_000;
const COMMAND_TIMEOUT_MS = 30_000;

/**
 * An OAUTHBEARER token for new connections, fetched again before it expires: from a command's standard output (for
 * example AWS's MSK IAM signer), from a file another process keeps fresh, or (tests) an unsigned token for a subject.
 * The command prints the token, or JSON `{"token": "…", "expiryTime": <epoch ms>}`; a JWT's `exp` is read too.
 * The token is refreshed at 80 % of its lifetime. Tokens never reach a log or an error message.
 */
export class OAuthTokenSource {
  private cached: { value: string; refreshAt: number } | undefined;
  private pending: Promise<string> | undefined;

  constructor(
    private readonly from: TokenFrom,
    private readonly now: () => number = Date.now,
  ) {}

  async token(): Promise<{ value: string }> {
    if (this.cached && this.now() < this.cached.refreshAt) return { value: this.cached.value };
    this.pending ??= this.load().finally(() => (this.pending = undefined));
    return { value: await this.pending };
  }

  private async load(): Promise<string> {
    const fetchedAt = this.now();
    const { value, expiresAt } = parseToken(await this.raw());
    if (!value) throw new AppError('KAFKA', `OAUTHBEARER: ${this.where()} gave an empty token`);
    const refreshAt =
      expiresAt === undefined
        ? fetchedAt + DEFAULT_REFRESH_MS
        : fetchedAt + 0.8 * Math.max(0, expiresAt - fetchedAt);
    this.cached = { value, refreshAt };
    return value;
  }

  private where(): string {
    if ('command' in this.from) return 'the token command';
    if ('file' in this.from) return `token file ${this.from.file}`;
    return 'the unsecured token';
  }

  private async raw(): Promise<string> {
    if ('unsecuredSubject' in this.from) return unsecuredJwt(this.from.unsecuredSubject, this.now());
    if ('file' in this.from) {
      try {
        return await readFile(this.from.file, 'utf8');
      } catch (err) {
        throw new AppError(
          'KAFKA',
          `OAUTHBEARER: cannot read token file ${this.from.file} (${errorMessage(err)})`,
        );
      }
    }
    const command = this.from.command;
    return new Promise((resolve, reject) => {
      execFile('/bin/sh', ['-c', command], { timeout: COMMAND_TIMEOUT_MS }, (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const why = err.killed
          ? `timed out after ${COMMAND_TIMEOUT_MS / 1000} s`
          : `exit code ${String(err.code)}`;
        const said = String(stderr).trim().split('\n')[0]?.slice(0, 200);
        reject(
          new AppError('KAFKA', `OAUTHBEARER: the token command failed (${why})${said ? `: ${said}` : ''}`),
        );
      });
    });
  }
}

/** The token and its expiry from a command's output or a file: plain token, or JSON with token and expiry. */
export function parseToken(text: string): { value: string; expiresAt?: number } {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    try {
      const o = JSON.parse(trimmed) as Record<string, unknown>;
      const value = o.token ?? o.access_token;
      const exp = o.expiryTime ?? o.expiresAt ?? o.expires_at;
      if (typeof value === 'string') {
        const expiresAt = typeof exp === 'number' ? exp : (jwtExpiry(value) ?? expiresInOf(o));
        return expiresAt === undefined ? { value } : { value, expiresAt };
      }
    } catch {
      // not JSON: taken as the token itself
    }
  }
  const expiresAt = jwtExpiry(trimmed);
  return expiresAt === undefined ? { value: trimmed } : { value: trimmed, expiresAt };
}

function expiresInOf(o: Record<string, unknown>): number | undefined {
  return typeof o.expires_in === 'number' ? Date.now() + o.expires_in * 1000 : undefined;
}

/** The `exp` claim (in ms) of a JWT, when the token is one. */
function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** An unsigned JWT (alg none) as Kafka's own client makes for `unsecuredLoginStringClaim_sub`: one hour. */
function unsecuredJwt(subject: string, now: number): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const iat = Math.floor(now / 1000);
  return `${b64({ alg: 'none' })}.${b64({ sub: subject, iat, exp: iat + 3600 })}.`;
}
