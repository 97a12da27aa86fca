import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { principalOf } from './auth/guard.js';
import { actorOf } from './auth/roles.js';
import type { TokenRecord } from './auth/user-view.js';
import { ApiError } from './problem.js';
import { BODY_ERRORS, COMMON_ERRORS, itemsOf, json, noContent, route } from './route-schemas.js';
import { SECURED } from './routes-users.js';
import type { UserRoutesOptions } from './routes-users.js';
import { parserOf } from './task-input.js';

const NEW_TOKEN = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 200 } },
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

const TOKEN_PARAMS = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: '^[0-9a-f]{12}$' } },
} as const;

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

const LIST = route('viewer', {
  ...SECURED,
  summary: 'API tokens: your own, or all for an admin (never their secrets)',
  response: { 200: json(itemsOf(TOKEN_SCHEMA), 'Tokens'), ...COMMON_ERRORS },
});

function listTokens(o: UserRoutesOptions, req: FastifyRequest): object {
  const p = principalOf(req);
  return {
    items: o.users.view
      .allTokens()
      .filter((t) => p.role === 'admin' || t.user === p.user)
      .map((t) => shownToken(t)),
  };
}

const CREATE = route(
  'viewer',
  {
    ...SECURED,
    summary: 'A long-lived API token for yourself, with your role (the secret is shown once)',
    body: NEW_TOKEN,
    response: { 201: json(TOKEN_SCHEMA, 'Created: keep `token`, it is not shown again'), ...BODY_ERRORS },
  },
  parserOf(NEW_TOKEN),
);

async function createToken(
  o: UserRoutesOptions,
  req: FastifyRequest<{ Body: { name: string } }>,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const p = principalOf(req);
  if (p.via === 'api-token')
    throw new ApiError(403, 'an API token cannot create API tokens: log in with a password');
  const { token, secret } = await o.users.createToken(p.user, req.body.name, actorOf(p));
  return reply.code(201).send(shownToken(token, secret));
}

const REVOKED = { 204: noContent('Revoked on every instance within a second'), ...BODY_ERRORS };
const REVOKE = route('viewer', {
  ...SECURED,
  summary: 'Revoke an API token',
  params: TOKEN_PARAMS,
  response: REVOKED,
});
const REVOKE_BY_QUERY = route('viewer', {
  ...SECURED,
  summary: 'Revoke an API token (?id=)',
  querystring: TOKEN_PARAMS,
  response: REVOKED,
});

/** Your own token, or any for an admin. */
async function revoke(
  o: UserRoutesOptions,
  req: FastifyRequest,
  reply: FastifyReply,
  id: string,
): Promise<FastifyReply> {
  const p = principalOf(req);
  const t = o.users.view.token(id);
  if (!t) throw new ApiError(404, `no API token ${id}`);
  if (t.user !== p.user && p.role !== 'admin')
    throw new ApiError(403, `${p.user} may only revoke their own tokens`);
  await o.users.revokeToken(id, actorOf(p));
  return reply.code(204).send();
}

/** `/api/v1/tokens…`: API tokens (docs/http-api.md#users-roles-and-tokens). */
export function registerTokenRoutes(app: FastifyInstance, o: UserRoutesOptions): void {
  app.get('/api/v1/tokens', LIST, (req) => listTokens(o, req));
  app.post<{ Body: { name: string } }>('/api/v1/tokens', CREATE, (req, reply) => createToken(o, req, reply));
  app.delete<{ Params: { id: string } }>('/api/v1/tokens/:id', REVOKE, (req, reply) =>
    revoke(o, req, reply, req.params.id),
  );
  app.delete<{ Querystring: { id: string } }>('/api/v1/tokens', REVOKE_BY_QUERY, (req, reply) =>
    revoke(o, req, reply, req.query.id),
  );
}
