/**
 * docs/http-api.md#users-roles-and-tokens: viewer reads; operator also creates, changes, triggers and deletes tasks;
 * admin also manages users.
 */
export type Role = 'viewer' | 'operator' | 'admin';
export const ROLES: readonly Role[] = ['viewer', 'operator', 'admin'];

/** What a route needs: a role, or nothing at all (login, sign-up, health, the OpenAPI document). */
export type Access = Role | 'public';

export function allows(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

/** Who is calling, as established from their bearer token. */
export interface Principal {
  user: string;
  /** The user's role now (a role change applies to tokens already issued). */
  role: Role;
  via: 'jwt' | 'api-token';
  tokenId?: string;
  /** The user must change the password taskapi was given for them before anything else (see guard.ts). */
  mustChangePassword?: boolean;
}

/** How a change is recorded: the user, and the API token when one was used. */
export function actorOf(p: Principal): string {
  return p.tokenId === undefined ? p.user : `${p.user} (token ${p.tokenId})`;
}
