import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { JobKeys } from '../jobs/keys';

/**
 * How long a job submission may reuse a tenant's overrides before reading them again (an admin's
 * change reaches submissions on every process within this; uploads and reports always read them).
 * Without it every POST /v1/jobs would add a Redis round trip.
 */
export const QUOTA_RECHECK_MS = 1000;
const QUOTA_CACHE_TENANTS = 10_000;

/**
 * A tenant's quotas: the config defaults, overridden field by field by what an admin stored with
 * PUT /v1/tenants/{tenant}/quotas (one Redis hash per tenant, read by every API process, so an
 * override applies everywhere at once). 0 means unlimited for every field.
 */
export interface QuotaValues {
  /** Bytes of the tenant's datasets and checkpoints (TENANT_MAX_STORAGE_BYTES). */
  maxStorageBytes: number;
  /** Uploads started per minute (TENANT_UPLOADS_PER_MINUTE). */
  uploadsPerMinute: number;
  /** Queued + running jobs (TENANT_MAX_ACTIVE_JOBS; enforced by the job service). */
  maxActiveJobs: number;
  /** Running jobs at once (per-tenant concurrency; enforced by the scheduler). */
  maxConcurrentJobs: number;
}

export const QUOTA_FIELDS = ['maxStorageBytes', 'uploadsPerMinute', 'maxActiveJobs', 'maxConcurrentJobs'] as const satisfies readonly (keyof QuotaValues)[];
export type QuotaField = (typeof QUOTA_FIELDS)[number];

export class TenantQuotas {
  private readonly recent = new LRUCache<string, Partial<QuotaValues>>({ max: QUOTA_CACHE_TENANTS, ttl: QUOTA_RECHECK_MS, fetchMethod: (tenant) => this.overrides(tenant) });

  constructor(
    private readonly redis: Redis,
    private readonly keys: Pick<JobKeys, 'tenantQuotas'>,
    private readonly defaults: Readonly<QuotaValues>,
  ) {}

  /** The effective quotas of `tenant`; `recent`: overrides read up to QUOTA_RECHECK_MS ago will do. */
  async get(tenant: string, opts: { recent?: boolean } = {}): Promise<QuotaValues> {
    // An admin's change deletes the entry, which aborts a fetch in flight ("deleted"): this asker
    // then reads for itself (a Redis error surfaces from that read, not from the abort).
    const overrides = opts.recent ? await this.recent.fetch(tenant).catch(() => undefined) : undefined;
    return { ...this.defaults, ...(overrides ?? (await this.overrides(tenant))) };
  }

  /** Only what an admin set for `tenant`. */
  async overrides(tenant: string): Promise<Partial<QuotaValues>> {
    const stored = await this.redis.hgetall(this.keys.tenantQuotas(tenant));
    const out: Partial<QuotaValues> = {};
    for (const field of QUOTA_FIELDS) {
      const n = Number(stored[field]);
      if (stored[field] !== undefined && Number.isSafeInteger(n) && n >= 0) out[field] = n;
    }
    return out;
  }

  /** Sets (a number) or clears (null: back to the default) each given field. */
  async set(tenant: string, changes: Partial<Record<QuotaField, number | null>>): Promise<QuotaValues> {
    const key = this.keys.tenantQuotas(tenant);
    const multi = this.redis.multi();
    for (const field of QUOTA_FIELDS) {
      const v = changes[field];
      if (v === null) multi.hdel(key, field);
      else if (v !== undefined) multi.hset(key, field, String(v));
    }
    await multi.exec();
    this.recent.delete(tenant);
    return this.get(tenant);
  }
}
