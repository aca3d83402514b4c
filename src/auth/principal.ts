import type { IncomingHttpHeaders } from 'node:http';

/**
 * Who is calling: the identity every /v1 route acts for. Set on `request.principal` by the v1
 * plugin's onRequest hook (routes/v1.ts) from the `Authorization: Bearer <key>` header, before any
 * body is read. Routes never look at headers themselves: they scope every object to
 * `principal.tenant` and check `principal.role`.
 */
export const ROLES = ['admin', 'member', 'reader'] as const;
export type Role = (typeof ROLES)[number];

/** Where data that existed before tenants lands on first start, and the tenant of GRAFT_AUTH=off. */
export const DEFAULT_TENANT = 'default';
/** The read-only namespace of shared models and datasets (`public/<name>` in a spec); only admins write it. */
export const PUBLIC_TENANT = 'public';
/** A tenant id: lower-case letters, digits and '-', 1-63 characters (a folder name and a Redis key part). */
export const TENANT_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}$';

export interface Principal {
  /** Id of the API key (null when GRAFT_AUTH=off). Never the secret. */
  keyId: string | null;
  /** Display name of the key, for the audit log. */
  keyName: string | null;
  /** The tenant this request acts in: the key's own, or for an admin the one named by the Graft-Tenant header. */
  tenant: string;
  role: Role;
}

/** Turns a request's headers into its principal, or throws a 401 GraftError. */
export interface Authenticator {
  authenticate(headers: IncomingHttpHeaders): Promise<Principal>;
  /** Idempotent. */
  close?(): Promise<void>;
}

/** GRAFT_AUTH=off (allowed only on a loopback HOST): every caller is the admin of the default tenant. */
export const OPEN_PRINCIPAL: Readonly<Principal> = Object.freeze({ keyId: null, keyName: null, tenant: DEFAULT_TENANT, role: 'admin' });

export class OpenAuthenticator implements Authenticator {
  async authenticate(): Promise<Principal> {
    return { ...OPEN_PRINCIPAL };
  }
}

export const isAdmin = (p: Principal): boolean => p.role === 'admin';
export const canWrite = (p: Principal): boolean => p.role !== 'reader';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}
