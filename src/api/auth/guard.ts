import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../problem.js';
import type { Authenticator } from './authenticator.js';
import { allows } from './roles.js';
import type { Access, Principal } from './roles.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Who may call the route (docs/http-api.md#users-roles-and-tokens); a route that does not say needs admin:
     * closed by default.
     */
    access?: Access;
    /** Open to a user who must change their password first: the change itself. */
    beforePasswordChange?: boolean;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** Authenticates every request to a route that needs a role, and refuses those without it (401, 403). */
export function installGuard(app: FastifyInstance, auth: Authenticator): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (req) => {
    if (req.is404) return;
    const need = req.routeOptions.config.access ?? 'admin';
    if (need === 'public') return;
    const p = await auth.authenticate(req.headers.authorization);
    if (p.mustChangePassword && !req.routeOptions.config.beforePasswordChange)
      throw passwordChangeRequired(p.user);
    if (!allows(p.role, need))
      throw new ApiError(403, `${p.user} has role ${p.role}; this needs ${need} or above`);
    req.principal = p;
  });
}

/** The answer to a user who must change the password taskapi was given for them, to anything else. */
export function passwordChangeRequired(user: string): ApiError {
  return new ApiError(
    403,
    `${user} must change the password first (it was set from the environment of taskapi): PUT /api/v1/users/${user} with {"currentPassword": …, "password": …}, or log in to the dashboard at /ui`,
  );
}

/** The caller of a guarded route. */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new ApiError(401, 'not authenticated');
  return req.principal;
}
