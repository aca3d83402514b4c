import { DEFAULT_TENANT } from '../auth/principal';
import { parseRef } from '../storage/layout';

/**
 * The tenant a job acts in. Job records from before tenants carry none: they are the default
 * tenant's (the volume migration put their data there).
 */
export function jobTenant(job: object): string {
  const tenant = (job as { tenant?: unknown }).tenant;
  return typeof tenant === 'string' && tenant.length > 0 ? tenant : DEFAULT_TENANT;
}

/**
 * The name under which an output checkpoint is reserved in Redis (graft:<q>:output:<name>), shared
 * by jobs and uploads: names are unique per tenant, so the reservation is too. The default
 * tenant keeps the bare name, so reservations made before tenants (queued jobs of an upgraded
 * deployment) still hold. Tenant ids cannot contain '/', names cannot either: no two collide.
 */
export function outputReservationName(tenant: string, name: string): string {
  return tenant === DEFAULT_TENANT ? name : `${tenant}/${name}`;
}

/** Whether `ref` (a spec's dataset or source checkpoint, read by a job of `refTenant`) names `name` of `tenant`. */
export function refersTo(ref: string | undefined, refTenant: string, tenant: string, name: string): boolean {
  if (ref === undefined) return false;
  const target = parseRef(ref, refTenant);
  return target !== null && target.tenant === tenant && target.name === name;
}
