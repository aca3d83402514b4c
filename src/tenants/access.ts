import { PUBLIC_TENANT, canWrite, isAdmin, type Principal } from '../auth/principal';
import { GraftError } from '../errors';

/**
 * Who may change a namespace: the public one only an admin (it is read-only for everyone else);
 * a tenant's own, anyone of it who may write. Role checks per route live with authentication;
 * this is the storage rule they cannot know (the same route writes a tenant's namespace or the
 * public one). Nothing here says whether an object exists: the public namespace is visible to all.
 */
export function assertMayWrite(principal: Principal, tenant: string): void {
  if (tenant === PUBLIC_TENANT && !isAdmin(principal)) {
    throw new GraftError('forbidden', 'The public namespace is read-only; only an admin can publish to it or delete from it.', { statusCode: 403 });
  }
  if (!canWrite(principal)) throw new GraftError('forbidden', 'This API key is read-only (role reader).', { statusCode: 403 });
}

export function assertAdmin(principal: Principal): void {
  if (!isAdmin(principal)) throw new GraftError('forbidden', 'Only an admin can do this.', { statusCode: 403 });
}
