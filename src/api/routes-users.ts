import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator } from './auth/authenticator.js';
import { passwordChangeRequired, principalOf } from './auth/guard.js';
import type { LoginLimiter } from './auth/login-limiter.js';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from './auth/passwords.js';
import { actorOf, ROLES } from './auth/roles.js';
import type { Principal, Role } from './auth/roles.js';
import type { UserStore } from './auth/user-store.js';
import { USER_NAME_PATTERN } from './auth/user-view.js';
import type { UserRecord } from './auth/user-view.js';
import { ApiError } from './problem.js';
import { BODY_ERRORS, COMMON_ERRORS, itemsOf, json, noContent, problem, route } from './route-schemas.js';
import { parserOf } from './task-input.js';

export interface UserRoutesOptions {
  users: UserStore;
  auth: Authenticator;
  limiter: LoginLimiter;
  allowSignup: boolean;
}

const NAME = { type: 'string', pattern: USER_NAME_PATTERN } as const;
const PASSWORD = {
  type: 'string',
  minLength: MIN_PASSWORD_LENGTH,
  maxLength: MAX_PASSWORD_LENGTH,
} as const;
const ROLE = { type: 'string', enum: [...ROLES] } as const;

const CREDENTIALS = {
  type: 'object',
  additionalProperties: false,
  required: ['username', 'password'],
  properties: { username: NAME, password: PASSWORD },
} as const;
const NEW_USER = {
  type: 'object',
  additionalProperties: false,
  required: ['username', 'password', 'role'],
  properties: { username: NAME, password: PASSWORD, role: ROLE },
} as const;
const PASSWORD_CHANGE = {
  type: 'object',
  additionalProperties: false,
  required: ['password'],
  properties: {
    password: PASSWORD,
    currentPassword: {
      type: 'string',
      maxLength: MAX_PASSWORD_LENGTH,
      description: 'Required when changing your own password',
    },
  },
} as const;
const ROLE_CHANGE = {
  type: 'object',
  additionalProperties: false,
  required: ['role'],
  properties: { role: ROLE },
} as const;

const USER_SCHEMA = {
  type: 'object',
  required: ['name', 'role', 'createdAt', 'updatedAt'],
  properties: {
    name: { type: 'string' },
    role: ROLE,
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    createdBy: { type: 'string' },
  },
} as const;
const ACCESS_TOKEN_SCHEMA = {
  type: 'object',
  required: ['accessToken', 'tokenType', 'expiresIn'],
  properties: {
    accessToken: { type: 'string' },
    tokenType: { type: 'string', enum: ['Bearer'] },
    expiresIn: { type: 'integer', description: 'seconds' },
    passwordChangeRequired: {
      type: 'boolean',
      description:
        'Present (true) when the password was set from taskapi’s environment: the token is good for PUT /api/v1/users/{you} only, until the password is changed',
    },
  },
} as const;
const NAME_PARAMS = { type: 'object', required: ['id'], properties: { id: NAME } } as const;

/** Never the password hash. */
function shown(u: UserRecord): object {
  return {
    name: u.name,
    role: u.role,
    createdAt: u.createdAt,
    updatedAt: u.updatedAt,
    ...(u.createdBy === undefined ? {} : { createdBy: u.createdBy }),
  };
}

/** Only you, or an admin, see and change a user. */
function selfOrAdmin(p: Principal, name: string): void {
  if (p.user !== name && p.role !== 'admin')
    throw new ApiError(403, `${p.user} may only see and change their own user`);
}

/** The client address the login limits count by. */
const address = (req: FastifyRequest): string => req.ip;

const PUBLIC = { security: [] } as const;
const TOO_MANY_LOGINS = problem(
  'Too many failed logins for this user and address, this user, or this address, on all instances (Retry-After)',
);
const BUSY = problem(
  'Too many password checks at once (Retry-After), or Kafka unreachable: the attempt could not be counted',
);
/** The tag of the users and tokens routes. */
export const SECURED = { tags: ['users'] } as const;

type Credentials = { Body: { username: string; password: string } };
type NameParams = { Params: { id: string } };
type PasswordChange = NameParams & { Body: { password: string; currentPassword?: string } };

const LOGIN = route(
  'public',
  {
    ...SECURED,
    ...PUBLIC,
    summary: 'Exchange a user name and password for a short-lived access token (JWT)',
    body: CREDENTIALS,
    response: {
      200: json(ACCESS_TOKEN_SCHEMA, 'Use as Authorization: Bearer <accessToken>'),
      400: BODY_ERRORS[400],
      401: problem('Wrong user name or password (the same answer for both)'),
      413: BODY_ERRORS[413],
      415: BODY_ERRORS[415],
      429: TOO_MANY_LOGINS,
      503: BUSY,
    },
  },
  parserOf(CREDENTIALS),
);

async function login(o: UserRoutesOptions, req: FastifyRequest<Credentials>): Promise<object> {
  const { username, password } = req.body;
  const token = await o.limiter.login(username, address(req), () => o.auth.login(username, password));
  if (!token) throw new ApiError(401, 'wrong user name or password');
  return token;
}

const SIGNUP = route(
  'public',
  {
    ...SECURED,
    ...PUBLIC,
    summary: 'Create your own user with role viewer (only when taskapi runs with --allow-signup)',
    description:
      'The same answer, after the same work, whether the name was free or not: when it was taken, nothing was created and the login fails',
    body: CREDENTIALS,
    response: {
      201: json(USER_SCHEMA, 'Created, as viewer (or the name was taken: the answer does not say)'),
      ...BODY_ERRORS,
      429: problem('Too many sign-ups from this address (Retry-After)'),
      503: BUSY,
    },
  },
  parserOf(CREDENTIALS),
);

async function signup(
  o: UserRoutesOptions,
  req: FastifyRequest<Credentials>,
  reply: FastifyReply,
): Promise<FastifyReply> {
  if (!o.allowSignup)
    throw new ApiError(403, 'sign-up is off: an admin creates users (or start taskapi with --allow-signup)');
  const { username, password } = req.body;
  const u = await o.limiter.signup(address(req), () => o.users.signUp(username, password));
  return reply.code(201).send(shown(u));
}

const LIST = route('admin', {
  ...SECURED,
  summary: 'All users',
  response: { 200: json(itemsOf(USER_SCHEMA), 'Users'), ...COMMON_ERRORS },
});

const CREATE = route(
  'admin',
  {
    ...SECURED,
    summary: 'Create a user',
    body: NEW_USER,
    response: { 201: json(USER_SCHEMA, 'Created'), ...BODY_ERRORS },
  },
  parserOf(NEW_USER),
);

async function createUser(
  o: UserRoutesOptions,
  req: FastifyRequest<{ Body: { username: string; password: string; role: Role } }>,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const { username, password, role } = req.body;
  const actor = actorOf(principalOf(req));
  const u = await o.limiter.hash(() => o.users.addUser(username, password, role, actor));
  return reply.code(201).send(shown(u));
}

const GET = route('viewer', {
  ...SECURED,
  summary: 'A user (yourself, or anyone for an admin)',
  params: NAME_PARAMS,
  response: { 200: json(USER_SCHEMA, 'The user'), ...COMMON_ERRORS },
});

function getUser(o: UserRoutesOptions, req: FastifyRequest<NameParams>): object {
  selfOrAdmin(principalOf(req), req.params.id);
  const u = o.users.view.user(req.params.id);
  if (!u) throw new ApiError(404, `no user ${req.params.id}`);
  return shown(u.user);
}

const CHANGE_PASSWORD = route(
  { access: 'viewer', beforePasswordChange: true },
  {
    ...SECURED,
    summary:
      'Change a password: your own (with currentPassword), or anyone’s for an admin; earlier access tokens stop working',
    params: NAME_PARAMS,
    body: PASSWORD_CHANGE,
    response: {
      200: json(USER_SCHEMA, 'Changed'),
      ...BODY_ERRORS,
      429: problem('Too many wrong currentPassword (they count as failed logins; Retry-After)'),
      503: BUSY,
    },
  },
  parserOf(PASSWORD_CHANGE),
);

async function changePassword(o: UserRoutesOptions, req: FastifyRequest<PasswordChange>): Promise<object> {
  const p = principalOf(req);
  if (p.mustChangePassword && p.user !== req.params.id) throw passwordChangeRequired(p.user);
  selfOrAdmin(p, req.params.id);
  // A leaked API token or access token must not be enough to take the account over.
  if (p.via === 'api-token')
    throw new ApiError(403, 'an API token cannot change passwords: log in with a password');
  // A wrong currentPassword is a failed login: a stolen access token must not be a way around the limits.
  const current = req.body.currentPassword ?? '';
  if (
    p.user === req.params.id &&
    !(await o.limiter.login(p.user, address(req), async () =>
      (await o.auth.checkPassword(p.user, current)) ? true : undefined,
    ))
  )
    throw new ApiError(403, 'currentPassword is missing or wrong: changing your own password needs it');
  if (p.mustChangePassword && req.body.password === req.body.currentPassword)
    throw new ApiError(400, 'choose a new password: this one was set from the environment of taskapi');
  const password = req.body.password;
  return shown(await o.limiter.hash(() => o.users.changeUser(req.params.id, { password }, actorOf(p))));
}

const REMOVE = route('admin', {
  ...SECURED,
  summary: 'Remove a user and revoke their API tokens',
  params: NAME_PARAMS,
  response: { 204: noContent('Removed'), ...BODY_ERRORS },
});

const CHANGE_ROLE = route(
  'admin',
  {
    ...SECURED,
    summary: 'Change a user’s role (applies to their tokens at once)',
    params: NAME_PARAMS,
    body: ROLE_CHANGE,
    response: { 200: json(USER_SCHEMA, 'Changed'), ...BODY_ERRORS },
  },
  parserOf(ROLE_CHANGE),
);

/** `/api/v1/users…` (docs/http-api.md#users-roles-and-tokens). */
export function registerUserRoutes(app: FastifyInstance, o: UserRoutesOptions): void {
  app.post<Credentials>('/api/v1/users/login', LOGIN, (req) => login(o, req));
  app.post<Credentials>('/api/v1/users/signup', SIGNUP, (req, reply) => signup(o, req, reply));
  app.get('/api/v1/users', LIST, () => ({ items: o.users.view.allUsers().map(shown) }));
  app.post<{ Body: { username: string; password: string; role: Role } }>(
    '/api/v1/users',
    CREATE,
    (req, reply) => createUser(o, req, reply),
  );
  app.get<NameParams>('/api/v1/users/:id', GET, (req) => getUser(o, req));
  app.put<PasswordChange>('/api/v1/users/:id', CHANGE_PASSWORD, (req) => changePassword(o, req));
  app.delete<NameParams>('/api/v1/users/:id', REMOVE, async (req, reply) => {
    await o.users.removeUser(req.params.id, actorOf(principalOf(req)));
    return reply.code(204).send();
  });
  app.put<NameParams & { Body: { role: Role } }>('/api/v1/users/:id/role', CHANGE_ROLE, async (req) =>
    shown(await o.users.changeUser(req.params.id, { role: req.body.role }, actorOf(principalOf(req)))),
  );
}
