import { randomUUID, timingSafeEqual } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { Clock } from '../../shared/clock.js';
import { ApiError } from '../problem.js';
import { DUMMY_HASH, verifyPassword } from './passwords.js';
import type { Principal } from './roles.js';
import type { SigningKeys } from './signing-keys.js';
import { API_TOKEN_PREFIX, sha256 } from './user-store.js';
import { generationOf } from './user-view.js';
import type { UserRecord, UserView } from './user-view.js';

const ISSUER = 'taskapi';

export interface AccessToken {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
  /** The token is good for changing the password only, until it is changed. */
  passwordChangeRequired?: true;
}

/** A 401 that says what is wrong without repeating what was sent. */
function unauthorized(why: string): ApiError {
  return new ApiError(401, why);
}

/** Read live from the user, like the role: the change applies to tokens already issued. */
function mustChange(user: UserRecord): Pick<Principal, 'mustChangePassword'> {
  return user.mustChangePassword ? { mustChangePassword: true } : {};
}

/** What a verified access token says: its user, the user's generation it was issued under, its expiry. */
interface Claims {
  sub: string;
  gen: number;
  expMs: number;
}

/**
 * Who a bearer token belongs to (JWT access token or API token), and passwords to access tokens. Either kind of token
 * is good only while its user's generation is the one it was issued under (see UserRecord.generation).
 */
export class Authenticator {
  private readonly verified = new Map<string, Claims>();

  constructor(
    private readonly users: UserView,
    private readonly keys: SigningKeys,
    private readonly clock: Clock,
    /** Lifetime of access tokens, seconds. */
    private readonly ttlSeconds: number,
  ) {}

  /** Whether `password` is the user's (for changing it). */
  async checkPassword(name: string, password: string): Promise<boolean> {
    return verifyPassword(password, this.users.user(name)?.user.passwordHash ?? DUMMY_HASH);
  }

  /** The same answer, after the same work, whether the user does not exist or the password is wrong. */
  async login(name: string, password: string): Promise<AccessToken | undefined> {
    const found = this.users.user(name);
    const ok = await verifyPassword(password, found?.user.passwordHash ?? DUMMY_HASH);
    if (!ok || !found) return undefined;
    const now = Math.floor(this.clock.now() / 1000);
    const accessToken = await new SignJWT({ role: found.user.role, gen: generationOf(found.user) })
      .setProtectedHeader({ alg: 'EdDSA', kid: this.keys.signing.kid, typ: 'JWT' })
      .setIssuer(ISSUER)
      .setSubject(name)
      .setIssuedAt(now)
      .setExpirationTime(now + this.ttlSeconds)
      .setJti(randomUUID())
      .sign(this.keys.signing.key);
    return {
      accessToken,
      tokenType: 'Bearer',
      expiresIn: this.ttlSeconds,
      ...(found.user.mustChangePassword ? { passwordChangeRequired: true as const } : {}),
    };
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m)
      throw unauthorized(
        'a bearer token is required: Authorization: Bearer <token> (POST /api/v1/users/login gives one)',
      );
    const token = m[1]!;
    return token.startsWith(API_TOKEN_PREFIX) ? this.apiToken(token) : this.jwt(token);
  }

  private apiToken(token: string): Principal {
    // `tmk_<id>_<secret>`: the id is hex; the secret is base64url, which may itself contain '_'.
    const rest = token.slice(API_TOKEN_PREFIX.length);
    const cut = rest.indexOf('_');
    const id = cut < 0 ? undefined : rest.slice(0, cut);
    const secret = cut < 0 ? undefined : rest.slice(cut + 1);
    const record = id ? this.users.token(id) : undefined;
    const expected = Buffer.from(record?.hash ?? sha256(''), 'hex');
    const given = Buffer.from(sha256(secret ?? ''), 'hex');
    if (!record || !timingSafeEqual(expected, given)) throw unauthorized('invalid or revoked API token');
    const user = this.users.user(record.user);
    if (!user) throw unauthorized('the API token’s user no longer exists');
    if (generationOf(record) !== generationOf(user.user))
      throw unauthorized(
        'the API token was made before its user’s password changed, role was lowered or user was removed: make a new one',
      );
    return {
      user: record.user,
      role: user.user.role,
      via: 'api-token',
      tokenId: record.id,
      ...mustChange(user.user),
    };
  }

  private async jwt(token: string): Promise<Principal> {
    const { sub, gen } = this.cached(token) ?? (await this.verify(token));
    const user = this.users.user(sub);
    if (!user) throw unauthorized('the access token’s user no longer exists');
    if (gen !== generationOf(user.user))
      throw unauthorized(
        'the access token was issued before its user’s password changed, role was lowered or user was removed: log in again',
      );
    return { user: sub, role: user.user.role, via: 'jwt', ...mustChange(user.user) };
  }

  /**
   * A token already verified: the signature check of the same bytes gives the same answer, and costs more than the
   * rest of a GET (EdDSA). The expiry is checked on every use; the user and their role are read live above.
   */
  private cached(token: string): Claims | undefined {
    const hit = this.verified.get(token);
    if (!hit) return undefined;
    if (hit.expMs > this.clock.now()) return hit;
    this.verified.delete(token);
    return undefined;
  }

  private async verify(token: string): Promise<Claims> {
    let sub: string | undefined;
    let exp: number | undefined;
    let gen: unknown;
    try {
      const { payload } = await jwtVerify(
        token,
        (header) => {
          const key = header.kid === undefined ? undefined : this.keys.verifying.get(header.kid);
          if (!key) throw new joseErrors.JWKSNoMatchingKey();
          return key;
        },
        { issuer: ISSUER, algorithms: ['EdDSA'], currentDate: new Date(this.clock.now()) },
      );
      sub = payload.sub;
      exp = payload.exp;
      // Tokens issued before generations carry none: generation 0, that of users not changed since.
      gen = payload.gen ?? 0;
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired)
        throw unauthorized('the access token has expired: log in again');
      throw unauthorized('invalid access token');
    }
    if (sub === undefined || exp === undefined || typeof gen !== 'number' || !Number.isSafeInteger(gen))
      throw unauthorized('invalid access token');
    if (this.verified.size >= 10_000) this.verified.delete(this.verified.keys().next().value!);
    const entry: Claims = { sub, gen, expMs: exp * 1000 };
    this.verified.set(token, entry);
    return entry;
  }
}
