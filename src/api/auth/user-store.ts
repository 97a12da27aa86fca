import { createHash, randomBytes } from 'node:crypto';
import type { Clock } from '../../shared/clock.js';
import { encodeJson } from '../../shared/messages.js';
import { BASE_HEADER, OP_HEADER } from '../../shared/tasks/task-log.js';
import type { TaskLogOutcome, TaskOp } from '../../shared/tasks/task-log.js';
import type { Logger } from '../../shared/logger.js';
import type { FollowedTopic, KafkaStore } from '../kafka-store.js';
import { ApiError } from '../problem.js';
import { ACTOR_HEADER } from '../../shared/tasks/task-log.js';
import type { AttemptOutcome } from './attempt-ledger.js';
import type { AttemptLog } from './login-limiter.js';
import { hashPassword, passwordProblem } from './passwords.js';
import { ROLES } from './roles.js';
import type { Role } from './roles.js';
import { GENERATION_HEADER, generationOf, tokenKey, userKey, USERS_TOPIC, UserView } from './user-view.js';
import type { TokenRecord, UserRecord } from './user-view.js';

/** `tmk_<id>_<secret>`: the id finds the record, the secret (32 random bytes) is checked against its hash. */
export const API_TOKEN_PREFIX = 'tmk_';

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The password, or a 400 saying why it is refused: the one check for every way a password arrives. */
function checked(password: string): string {
  const problem = passwordProblem(password);
  if (problem) throw new ApiError(400, problem);
  return password;
}

/** Users and API tokens in `taskmanager.users`, written with read-your-writes like tasks. */
export class UserStore {
  readonly view: UserView;

  constructor(
    private readonly store: KafkaStore,
    private readonly clock: Clock,
    logger: Logger,
  ) {
    this.view = new UserView(logger, (r, outcome) => store.settle(r, outcome));
  }

  topics(): FollowedTopic[] {
    return [{ topic: USERS_TOPIC, onRecord: (r) => this.view.onRecord(r), from: { fromBeginning: true } }];
  }

  /** Login and sign-up attempts, in the same topic (see LoginLimiter). */
  attemptLog(): AttemptLog {
    return {
      ledger: this.view.attempts,
      writerId: this.store.writerId,
      write: (key, value) =>
        this.store.write<AttemptOutcome>(USERS_TOPIC, key, value === null ? null : encodeJson(value), {}),
    };
  }

  /**
   * `mustChangePassword`: the user may do nothing but change the password until they have (see guard.ts). The
   * generation starts above every earlier user of the name this instance read, and at the clock's milliseconds, so it
   * does not repeat one whose tombstone compaction removed since.
   */
  async addUser(
    name: string,
    password: string,
    role: Role,
    actor: string,
    o: { mustChangePassword?: boolean; quiet?: boolean } = {},
  ): Promise<UserRecord> {
    const now = new Date(this.clock.now()).toISOString();
    const user: UserRecord = {
      v: 1,
      kind: 'user',
      name,
      role,
      passwordHash: await hashPassword(checked(password)),
      createdAt: now,
      updatedAt: now,
      createdBy: actor,
      generation: Math.max(this.view.firstGeneration(name), this.clock.now()),
      ...(o.mustChangePassword ? { mustChangePassword: true } : {}),
    };
    await this.write(
      userKey(name),
      user,
      'create',
      actor,
      o.quiet ? {} : { conflict: `user ${name} already exists` },
    );
    return user;
  }

  /**
   * A viewer made by sign-up. The same work and the same answer whether the name was free or not: a taken name is
   * refused by the log's write rules like any create, but nothing tells the caller (it would tell which names exist).
   */
  signUp(name: string, password: string): Promise<UserRecord> {
    return this.addUser(name, password, 'viewer', `signup:${name}`, { quiet: true });
  }

  /** Changes a user's role or password (whichever is given); a new password ends `mustChangePassword`. */
  async changeUser(
    name: string,
    change: { role?: Role; password?: string },
    actor: string,
  ): Promise<UserRecord> {
    const current = this.found(name);
    if (
      change.role !== undefined &&
      change.role !== 'admin' &&
      current.user.role === 'admin' &&
      this.view.admins() === 1
    )
      throw new ApiError(409, `${name} is the last admin: make another user admin first`);
    const { mustChangePassword, ...kept } = current.user;
    // A new password or a lower role ends every token issued before it (see Authenticator).
    const lower = change.role !== undefined && ROLES.indexOf(change.role) < ROLES.indexOf(current.user.role);
    const user: UserRecord = {
      ...kept,
      ...(change.password !== undefined || lower ? { generation: generationOf(current.user) + 1 } : {}),
      ...(change.password === undefined && mustChangePassword ? { mustChangePassword } : {}),
      ...(change.role === undefined ? {} : { role: change.role }),
      ...(change.password === undefined
        ? {}
        : {
            passwordHash: await hashPassword(checked(change.password)),
            passwordChangedAt: new Date(this.clock.now()).toISOString(),
          }),
      updatedAt: new Date(this.clock.now()).toISOString(),
    };
    await this.write(userKey(name), user, 'update', actor, {
      conflict: `user ${name} changed meanwhile: try again`,
      base: current.version,
    });
    return user;
  }

  /**
   * Revokes a user's API tokens, then removes the user: a stop in between leaves the user there, not tokens without
   * their user. The tombstone carries the next generation, so a user made again with the name starts above every
   * token of this one anyway (see UserView.firstGeneration).
   */
  async removeUser(name: string, actor: string): Promise<void> {
    const current = this.found(name);
    if (current.user.role === 'admin' && this.view.admins() === 1)
      throw new ApiError(409, `${name} is the last admin: make another user admin first`);
    for (const t of this.view.allTokens()) if (t.user === name) await this.revokeToken(t.id, actor);
    await this.write(userKey(name), null, 'delete', actor, {
      conflict: `user ${name} changed meanwhile: try again`,
      base: current.version,
      headers: { [GENERATION_HEADER]: String(generationOf(current.user) + 1) },
    });
  }

  /** A new API token for `user`; the secret is in the answer only. */
  async createToken(
    user: string,
    name: string,
    actor: string,
  ): Promise<{ token: TokenRecord; secret: string }> {
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const token: TokenRecord = {
      v: 1,
      kind: 'token',
      id,
      user,
      name,
      hash: sha256(secret),
      createdAt: new Date(this.clock.now()).toISOString(),
      createdBy: actor,
      generation: generationOf(this.view.user(user)?.user ?? {}),
    };
    await this.write(tokenKey(id), token, 'create', actor, { conflict: `token id ${id} exists: try again` });
    return { token, secret: `${API_TOKEN_PREFIX}${id}_${secret}` };
  }

  async revokeToken(id: string, actor: string): Promise<void> {
    if (!this.view.token(id)) throw new ApiError(404, `no API token ${id}`);
    const base = this.view.version(tokenKey(id));
    await this.write(tokenKey(id), null, 'delete', actor, {
      conflict: `token ${id} changed meanwhile`,
      ...(base === undefined ? {} : { base }),
    });
  }

  /** Restates a key after a rejected record (see KafkaStore.restate). */
  repair(key: string): Promise<void> {
    return this.store.restate(USERS_TOPIC, key, () => {
      const version = this.view.version(key);
      if (version === undefined || !this.view.unrepaired.has(key)) return undefined;
      const current = this.view.valueOf(key);
      return { value: current ? encodeJson(current) : null, version };
    });
  }

  private found(name: string): { user: UserRecord; version: string } {
    const u = this.view.user(name);
    if (!u) throw new ApiError(404, `no user ${name}`);
    return u;
  }

  /**
   * Writes a record under the log's write rules. A rejected one is repaired, then answered 409 with `conflict`; without
   * `conflict` nothing is said, and the repair is not waited for (sign-up: the answer must not tell).
   */
  private async write(
    key: string,
    value: UserRecord | TokenRecord | null,
    op: TaskOp,
    actor: string,
    o: { conflict?: string; base?: string; headers?: Record<string, string> },
  ): Promise<void> {
    const outcome = await this.store.write<TaskLogOutcome>(
      USERS_TOPIC,
      key,
      value === null ? null : encodeJson(value),
      {
        ...o.headers,
        [OP_HEADER]: op,
        [ACTOR_HEADER]: actor,
        ...(o.base === undefined ? {} : { [BASE_HEADER]: o.base }),
      },
    );
    if (outcome.kind !== 'rejected') return;
    if (o.conflict === undefined) {
      void this.repair(key).catch(() => undefined);
      return;
    }
    await this.repair(key);
    throw new ApiError(409, o.conflict);
  }
}
