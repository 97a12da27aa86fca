import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Authenticator } from './auth/authenticator.js';
import { passwordChangeRequired, principalOf } from './auth/guard.js';
import type { LoginLimiter } from './auth/login-limiter.js';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from './auth/passwords.js';
import { actorOf, ROLES } from './auth/roles.js';
import type { Principal, Role } from './auth/roles.js';
import type { UserStore } from './auth/user-store.js';
import { USER_NAME_PATTERN } from './auth/user-view.js';
import type { TokenRecord, UserRecord } from './auth/user-view.js';
import { ApiError } from './problem.js';
import { BODY_ERRORS, bodyValidator, COMMON_ERRORS, json, problem } from './route-schemas.js';
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
const NEW_TOKEN = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 200 } },
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
const TOKEN_SCHEMA = {
  type: 'object',
  required: ['id', 'name', 'user', 'createdAt'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    user: { type: 'string' },
    createdAt: { type: 'string' },
    createdBy: { type: 'string' },
    token: { type: 'string', description: 'The secret: shown in this answer only' },
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
const TOKEN_PARAMS = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: '^[0-9a-f]{12}$' } },
} as const;

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

/** Never the secret's hash. */
function shownToken(t: TokenRecord, secret?: string): object {
  return {
    id: t.id,
    name: t.name,
    user: t.user,
    createdAt: t.createdAt,
    createdBy: t.createdBy,
    ...(secret === undefined ? {} : { token: secret }),
  };
}

function selfOrAdmin(p: Principal, name: string): void {
  if (p.user !== name && p.role !== 'admin')
    throw new ApiError(403, `${p.user} may only see and change their own user`);
}

const PUBLIC = { security: [] } as const;
const TOO_MANY_LOGINS = problem(
  'Too many failed logins for this user and address, this user, or this address, on all instances (Retry-After)',
);
const BUSY = problem(
  'Too many password checks at once (Retry-After), or Kafka unreachable: the attempt could not be counted',
);
const SECURED = { tags: ['users'] } as const;

/** `/api/v1/users…` and `/api/v1/tokens…` (docs/http-api.md#users-roles-and-tokens). */
export function registerUserRoutes(app: FastifyInstance, o: UserRoutesOptions): void {
  const { users, auth, limiter } = o;
  const address = (req: FastifyRequest) => req.ip;

  app.post<{ Body: { username: string; password: string } }>(
    '/api/v1/users/login',
    {
      config: { access: 'public' },
      schema: {
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
      validatorCompiler: bodyValidator(parserOf(CREDENTIALS)),
    },
    async (req) => {
      const { username, password } = req.body;
      const token = await limiter.login(username, address(req), () => auth.login(username, password));
      if (!token) throw new ApiError(401, 'wrong user name or password');
      return token;
    },
  );

  app.post<{ Body: { username: string; password: string } }>(
    '/api/v1/users/signup',
    {
      config: { access: 'public' },
      schema: {
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
      validatorCompiler: bodyValidator(parserOf(CREDENTIALS)),
    },
    async (req, reply) => {
      if (!o.allowSignup)
        throw new ApiError(
          403,
          'sign-up is off: an admin creates users (or start taskapi with --allow-signup)',
        );
      const { username, password } = req.body;
      const u = await limiter.signup(address(req), () => users.signUp(username, password));
      return reply.code(201).send(shown(u));
    },
  );

  app.get(
    '/api/v1/users',
    {
      config: { access: 'admin' },
      schema: {
        ...SECURED,
        summary: 'All users',
        response: {
          200: json(
            {
              type: 'object',
              required: ['items'],
              properties: { items: { type: 'array', items: USER_SCHEMA } },
            },
            'Users',
          ),
          ...COMMON_ERRORS,
        },
      },
    },
    () => ({ items: users.view.allUsers().map(shown) }),
  );

  app.post<{ Body: { username: string; password: string; role: Role } }>(
    '/api/v1/users',
    {
      config: { access: 'admin' },
      schema: {
        ...SECURED,
        summary: 'Create a user',
        body: NEW_USER,
        response: { 201: json(USER_SCHEMA, 'Created'), ...BODY_ERRORS },
      },
      validatorCompiler: bodyValidator(parserOf(NEW_USER)),
    },
    async (req, reply) => {
      const { username, password, role } = req.body;
      const actor = actorOf(principalOf(req));
      const u = await limiter.hash(() => users.addUser(username, password, role, actor));
      return reply.code(201).send(shown(u));
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/users/:id',
    {
      config: { access: 'viewer' },
      schema: {
        ...SECURED,
        summary: 'A user (yourself, or anyone for an admin)',
        params: NAME_PARAMS,
        response: { 200: json(USER_SCHEMA, 'The user'), ...COMMON_ERRORS },
      },
    },
    (req) => {
      selfOrAdmin(principalOf(req), req.params.id);
      const u = users.view.user(req.params.id);
      if (!u) throw new ApiError(404, `no user ${req.params.id}`);
      return shown(u.user);
    },
  );

  app.put<{ Params: { id: string }; Body: { password: string; currentPassword?: string } }>(
    '/api/v1/users/:id',
    {
      config: { access: 'viewer', beforePasswordChange: true },
      schema: {
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
      validatorCompiler: bodyValidator(parserOf(PASSWORD_CHANGE)),
    },
    async (req) => {
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
        !(await limiter.login(p.user, address(req), async () =>
          (await auth.checkPassword(p.user, current)) ? true : undefined,
        ))
      )
        throw new ApiError(403, 'currentPassword is missing or wrong: changing your own password needs it');
      if (p.mustChangePassword && req.body.password === req.body.currentPassword)
        throw new ApiError(400, 'choose a new password: this one was set from the environment of taskapi');
      const password = req.body.password;
      return shown(await limiter.hash(() => users.changeUser(req.params.id, { password }, actorOf(p))));
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/users/:id',
    {
      config: { access: 'admin' },
      schema: {
        ...SECURED,
        summary: 'Remove a user and revoke their API tokens',
        params: NAME_PARAMS,
        response: { 204: { description: 'Removed', type: 'null' }, ...BODY_ERRORS },
      },
    },
    async (req, reply) => {
      await users.removeUser(req.params.id, actorOf(principalOf(req)));
      return reply.code(204).send();
    },
  );

  app.put<{ Params: { id: string }; Body: { role: Role } }>(
    '/api/v1/users/:id/role',
    {
      config: { access: 'admin' },
      schema: {
        ...SECURED,
        summary: 'Change a user’s role (applies to their tokens at once)',
        params: NAME_PARAMS,
        body: ROLE_CHANGE,
        response: { 200: json(USER_SCHEMA, 'Changed'), ...BODY_ERRORS },
      },
      validatorCompiler: bodyValidator(parserOf(ROLE_CHANGE)),
    },
    async (req) =>
      shown(await users.changeUser(req.params.id, { role: req.body.role }, actorOf(principalOf(req)))),
  );

  app.get(
    '/api/v1/tokens',
    {
      config: { access: 'viewer' },
      schema: {
        ...SECURED,
        summary: 'API tokens: your own, or all for an admin (never their secrets)',
        response: {
          200: json(
            {
              type: 'object',
              required: ['items'],
              properties: { items: { type: 'array', items: TOKEN_SCHEMA } },
            },
            'Tokens',
          ),
          ...COMMON_ERRORS,
        },
      },
    },
    (req) => {
      const p = principalOf(req);
      return {
        items: users.view
          .allTokens()
          .filter((t) => p.role === 'admin' || t.user === p.user)
          .map((t) => shownToken(t)),
      };
    },
  );

  app.post<{ Body: { name: string } }>(
    '/api/v1/tokens',
    {
      config: { access: 'viewer' },
      schema: {
        ...SECURED,
        summary: 'A long-lived API token for yourself, with your role (the secret is shown once)',
        body: NEW_TOKEN,
        response: { 201: json(TOKEN_SCHEMA, 'Created: keep `token`, it is not shown again'), ...BODY_ERRORS },
      },
      validatorCompiler: bodyValidator(parserOf(NEW_TOKEN)),
    },
    async (req, reply) => {
      const p = principalOf(req);
      if (p.via === 'api-token')
        throw new ApiError(403, 'an API token cannot create API tokens: log in with a password');
      const { token, secret } = await users.createToken(p.user, req.body.name, actorOf(p));
      return reply.code(201).send(shownToken(token, secret));
    },
  );

  const revoke = async (req: FastifyRequest, id: string): Promise<void> => {
    const p = principalOf(req);
    const t = users.view.token(id);
    if (!t) throw new ApiError(404, `no API token ${id}`);
    if (t.user !== p.user && p.role !== 'admin')
      throw new ApiError(403, `${p.user} may only revoke their own tokens`);
    await users.revokeToken(id, actorOf(p));
  };
  const REVOKED = {
    204: { description: 'Revoked on every instance within a second', type: 'null' },
    ...BODY_ERRORS,
  };
  app.delete<{ Params: { id: string } }>(
    '/api/v1/tokens/:id',
    {
      config: { access: 'viewer' },
      schema: { ...SECURED, summary: 'Revoke an API token', params: TOKEN_PARAMS, response: REVOKED },
    },
    async (req, reply) => {
      await revoke(req, req.params.id);
      return reply.code(204).send();
    },
  );
  app.delete<{ Querystring: { id: string } }>(
    '/api/v1/tokens',
    {
      config: { access: 'viewer' },
      schema: {
        ...SECURED,
        summary: 'Revoke an API token (?id=)',
        querystring: TOKEN_PARAMS,
        response: REVOKED,
      },
    },
    async (req, reply) => {
      await revoke(req, req.query.id);
      return reply.code(204).send();
    },
  );
}
