import type { Redis } from 'ioredis';
import type { JobKeys } from '../jobs/keys';

/** A tenant's job quotas: queued + running jobs, and jobs running at once (0 = unlimited). */
export interface JobLimitValues {
  maxActiveJobs: number;
  maxConcurrentJobs: number;
}

/** What job submission and the worker need to know of a tenant's quotas. */
export interface TenantJobLimits {
  /** The configured defaults: create.lua and start.lua apply them unless the tenant's record overrides them. */
  readonly defaults: Readonly<JobLimitValues>;
  forTenant(tenant: string): Promise<JobLimitValues>;
}

/**
 * Job quotas from config, overridden per tenant by the admin-set hash `keys.tenantQuotas(tenant)`
 * (fields named as the quotas, integer values). The scripts that enforce them read the same hash
 * in the same step as they count (create.lua, start.lua), so enforcement needs no extra round trip
 * and no cache that could disagree between API processes; this class answers what they apply.
 */
export class JobLimits implements TenantJobLimits {
  constructor(
    private readonly redis: Redis,
    private readonly keys: JobKeys,
    readonly defaults: Readonly<JobLimitValues>,
  ) {}

  async forTenant(tenant: string): Promise<JobLimitValues> {
    const [active, concurrent] = await this.redis.hmget(this.keys.tenantQuotas(tenant), 'maxActiveJobs', 'maxConcurrentJobs');
    return { maxActiveJobs: integerOr(active, this.defaults.maxActiveJobs), maxConcurrentJobs: integerOr(concurrent, this.defaults.maxConcurrentJobs) };
  }
}

/** As Lua's tonumber(): an override that is not a number counts as absent. */
function integerOr(value: string | null, fallback: number): number {
  const n = value === null || value.trim() === '' ? NaN : Number(value);
  return Number.isFinite(n) ? n : fallback;
}
