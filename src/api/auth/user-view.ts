import { Ajv } from 'ajv';
import type { JSONSchemaType } from 'ajv';
import type { InRecord } from '../../shared/kafka/index.js';
import type { Logger } from '../../shared/logger.js';
import { foldTaskRecord, nextKeyState } from '../../shared/tasks/task-log.js';
import type { KeyState, TaskLogOutcome } from '../../shared/tasks/task-log.js';
import { AttemptLedger, ATTEMPTS_PREFIX } from './attempt-ledger.js';
import type { AttemptOutcome } from './attempt-ledger.js';
import { ROLES } from './roles.js';
import type { Role } from './roles.js';

/**
 * The compacted topic of users and API tokens (key `user:<name>` / `token:<id>`, tombstone = removed/revoked), and of
 * login and sign-up attempts (`attempts:<subject>`, see attempt-ledger.ts).
 */
export const USERS_TOPIC = 'taskmanager.users';

export const USER_NAME_PATTERN = '^[A-Za-z0-9._@-]{1,100}$';

/** On a user's tombstone: the generation the user was removed at; a user made again with the name starts above it. */
export const GENERATION_HEADER = 'tm-generation';

/** A user: a password hash only (scrypt, per-user salt), never the password. */
export interface UserRecord {
  v: 1;
  kind: 'user';
  name: string;
  role: Role;
  passwordHash: string;
  createdAt: string;
  updatedAt: string;
  createdBy?: string;
  /** When the password last changed (the tokens issued before end by `generation`). */
  passwordChangedAt?: string;
  /**
   * The token generation: access tokens carry the one they were issued under, API tokens record it, and either is
   * refused once it differs. Raised by a password change, a lower role and removal; absent (records from before it):
   * 0.
   */
  generation?: number;
  /**
   * The password was given to taskapi in its environment (TASKAPI_ADMIN_PASSWORD): the user may do nothing but change
   * it until they have. Cleared by the change.
   */
  mustChangePassword?: boolean;
}

/** A long-lived API token: the SHA-256 of its secret only (the secret is shown once, at creation). */
export interface TokenRecord {
  v: 1;
  kind: 'token';
  id: string;
  user: string;
  name: string;
  hash: string;
  createdAt: string;
  createdBy: string;
  /** The user's generation when the token was made (absent: 0); a token of another generation is refused. */
  generation?: number;
}

const userSchema: JSONSchemaType<UserRecord> = {
  type: 'object',
  required: ['v', 'kind', 'name', 'role', 'passwordHash', 'createdAt', 'updatedAt'],
  properties: {
    v: { type: 'integer', const: 1 },
    kind: { type: 'string', const: 'user' },
    name: { type: 'string', pattern: USER_NAME_PATTERN },
    role: { type: 'string', enum: [...ROLES] },
    passwordHash: { type: 'string' },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    createdBy: { type: 'string', nullable: true },
    passwordChangedAt: { type: 'string', nullable: true },
    mustChangePassword: { type: 'boolean', nullable: true },
    generation: { type: 'integer', minimum: 0, nullable: true },
  },
};

const tokenSchema: JSONSchemaType<TokenRecord> = {
  type: 'object',
  required: ['v', 'kind', 'id', 'user', 'name', 'hash', 'createdAt', 'createdBy'],
  properties: {
    v: { type: 'integer', const: 1 },
    kind: { type: 'string', const: 'token' },
    id: { type: 'string' },
    user: { type: 'string' },
    name: { type: 'string' },
    hash: { type: 'string' },
    createdAt: { type: 'string' },
    createdBy: { type: 'string' },
    generation: { type: 'integer', minimum: 0, nullable: true },
  },
};

const ajv = new Ajv({ strict: true });
const isUser = ajv.compile(userSchema);
const isToken = ajv.compile(tokenSchema);

export const userKey = (name: string): string => `user:${name}`;
export const tokenKey = (id: string): string => `token:${id}`;

/** A user's generation (records from before generations: 0). */
export const generationOf = (r: { generation?: number }): number => r.generation ?? 0;

/** Users and API tokens as this instance read them from `taskmanager.users`, under the same write rules as tasks. */
export class UserView {
  private readonly keys = new Map<string, KeyState>();
  private readonly users = new Map<string, { user: UserRecord; version: string }>();
  private readonly tokens = new Map<string, TokenRecord>();
  /** Per removed user name: the lowest generation a user made again with it may have. */
  private readonly removedAt = new Map<string, number>();
  /** Keys whose last record was rejected: a repair must restate them (see shared/tasks/task-log.ts). */
  readonly unrepaired = new Set<string>();
  readonly attempts: AttemptLedger;

  constructor(
    private readonly logger: Logger,
    private readonly onOutcome: (r: InRecord, outcome: TaskLogOutcome | AttemptOutcome) => void = () =>
      undefined,
  ) {
    this.attempts = new AttemptLedger(logger);
  }

  user(name: string): { user: UserRecord; version: string } | undefined {
    return this.users.get(name);
  }

  /**
   * The lowest generation a new user of this name may start at: above the generation of any user of the name this
   * instance has read (the one there now, or one removed).
   */
  firstGeneration(name: string): number {
    const u = this.users.get(name);
    return Math.max(u ? generationOf(u.user) + 1 : 0, this.removedAt.get(name) ?? 0);
  }

  token(id: string): TokenRecord | undefined {
    return this.tokens.get(id);
  }

  allUsers(): UserRecord[] {
    return [...this.users.values()].map((u) => u.user).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  allTokens(): TokenRecord[] {
    return [...this.tokens.values()].sort((a, b) => (a.createdAt < b.createdAt ? -1 : 1));
  }

  /** The current value of a key (a user or token record; undefined when absent). */
  valueOf(key: string): UserRecord | TokenRecord | undefined {
    return key.startsWith('user:') ? this.users.get(key.slice(5))?.user : this.tokens.get(key.slice(6));
  }

  /** The version (record offset) of a key's current state. */
  version(key: string): string | undefined {
    return this.keys.get(key)?.version;
  }

  admins(): number {
    let n = 0;
    for (const { user } of this.users.values()) if (user.role === 'admin') n++;
    return n;
  }

  onRecord(r: InRecord): void {
    const key = r.key?.toString('utf8') ?? '';
    if (key.startsWith(ATTEMPTS_PREFIX)) {
      this.onOutcome(r, this.attempts.onRecord(key, r));
      return;
    }
    const [kind, id] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)];
    let value: UserRecord | TokenRecord | undefined;
    if (r.value !== null) {
      let data: unknown;
      try {
        data = JSON.parse(r.value.toString('utf8'));
      } catch {
        data = undefined;
      }
      if (kind === 'user' && isUser(data) && data.name === id) value = data;
      else if (kind === 'token' && isToken(data) && data.id === id) value = data;
      else {
        // Never the value: it may hold a hash.
        this.logger.warn(
          `ignoring ${USERS_TOPIC}/${r.partition}@${r.offset}: not a user or token record for key ${key}`,
        );
        return;
      }
    }
    const prev = this.keys.get(key);
    const outcome = foldTaskRecord(prev, r);
    if (outcome.kind === 'rejected') this.unrepaired.add(key);
    else this.unrepaired.delete(key);
    const next = nextKeyState(prev, outcome);
    if (next) this.keys.set(key, next);
    if (outcome.kind === 'put' && value) {
      if (value.kind === 'user') this.users.set(id, { user: value, version: outcome.version });
      else this.tokens.set(id, value);
    } else if (outcome.kind === 'delete') {
      if (kind === 'user') this.removed(id, r);
      else this.tokens.delete(id);
    }
    this.onOutcome(r, outcome);
  }

  /** Remembers the generation of a removed user (its tombstone's header, or one above the record this instance had). */
  private removed(name: string, r: InRecord): void {
    const header = Number(r.headers[GENERATION_HEADER]);
    const known = this.firstGeneration(name);
    this.removedAt.set(name, Math.max(known, Number.isSafeInteger(header) ? header : 0));
    this.users.delete(name);
  }
}
