import type { IncomingHttpHeaders } from 'node:http';
import { ForbiddenError, ValidationError } from '../errors';
import { TENANT_PATTERN, type Principal, type Role } from './principal';

/**
 * What a /v1 route needs from the caller's role: `read` (every role), `write` (admin, member) or
 * `admin`. Routes declare it as `config: { access: 'read' }`; without it the method decides
 * (GET/HEAD read, anything else write). A POST that changes nothing (a dry-run plan, a prediction)
 * says `read`.
 */
export const ACCESS_LEVELS = ['read', 'write', 'admin'] as const;
export type Access = (typeof ACCESS_LEVELS)[number];

/** A route's access requirement, as route config (`{ config: { access: 'read' } }`). */
export interface AccessConfig {
  access?: Access;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the caller's role must allow (src/auth/access.ts); default from the method. */
    access?: Access;
  }
}

/** Header an admin sends to act in another tenant. */
export const TENANT_HEADER = 'graft-tenant';

const ALLOWED: Record<Access, readonly Role[]> = { read: ['admin', 'member', 'reader'], write: ['admin', 'member'], admin: ['admin'] };

export function requiredAccess(method: string, declared: Access | undefined): Access {
  return declared ?? (method === 'GET' || method === 'HEAD' ? 'read' : 'write');
}

/** Throws 403 `forbidden` naming the role when it may not do what the route needs. */
export function checkAccess(principal: Principal, access: Access, what: string): void {
  if (ALLOWED[access].includes(principal.role)) return;
  const needs = access === 'admin' ? 'an admin key' : 'a key that may write (admin or member)';
  throw new ForbiddenError('forbidden', `This key's role (${principal.role}) may not ${what}: it needs ${needs}.`);
}

/**
 * The tenant a request acts in: the key's own, or for an admin the one named by Graft-Tenant.
 * Anyone else sending the header gets 403 (silently ignoring it would act in the wrong tenant).
 */
export function actingPrincipal(principal: Principal, headers: IncomingHttpHeaders): Principal {
  const raw = headers[TENANT_HEADER];
  if (raw === undefined) return principal;
  const tenant = Array.isArray(raw) ? raw[0] : raw;
  if (principal.role !== 'admin') {
    throw new ForbiddenError('forbidden', `Only an admin key may act in another tenant (Graft-Tenant); this key's role is ${principal.role}.`, 'Graft-Tenant');
  }
  if (Array.isArray(raw) || !new RegExp(TENANT_PATTERN).test(tenant)) {
    throw new ValidationError('invalid_tenant', `Graft-Tenant must be one tenant id matching ${TENANT_PATTERN}.`, 'Graft-Tenant');
  }
  return { ...principal, tenant };
}
