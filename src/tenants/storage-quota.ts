import { randomUUID } from 'node:crypto';
import { PUBLIC_TENANT } from '../auth/principal';
import { UnavailableError } from '../errors';
import { storageQuotaExceeded } from './quota-errors';
import type { StorageHolds } from './storage-holds';
import type { TenantQuotas } from './quotas';
import type { StorageUsage } from './storage-usage';
import type { UploadRate } from './upload-rate';

/** Gives back bytes granted by StorageQuota.reserve (after the install, or when the upload fails). */
export type StorageRelease = () => Promise<void>;

/**
 * Times reserve() measures again when other uploads of the tenant were installed meanwhile. Each
 * retry means another upload finished, so running out takes that many installs of one tenant
 * during one measurement: answered 503, retry.
 */
const RESERVE_ATTEMPTS = 5;
const RETRY_AFTER_SECONDS = 1;
const nothingToRelease: StorageRelease = async () => undefined;

/**
 * The storage side of tenant quotas, as uploads and submissions ask for it: may `tenant` store
 * `bytes` more, may it start another upload. The public namespace is written only by admins
 * (publish) and counts against no tenant.
 */
export class StorageQuota {
  constructor(
    private readonly quotas: TenantQuotas,
    private readonly usage: StorageUsage,
    private readonly rate: UploadRate,
    private readonly holds: StorageHolds,
  ) {}

  /**
   * Throws 403 quota_exceeded if `tenant` storing `bytes` more would go over its storage quota.
   * `recent`: a usage measured up to USAGE_RECHECK_MS ago will do (job submissions; uploads measure).
   */
  async ensureRoom(tenant: string, bytes: number, opts: { recent?: boolean } = {}): Promise<void> {
    const maxStorageBytes = await this.limitOf(tenant, opts);
    if (maxStorageBytes === null) return;
    const used = (await this.usage.bytes(tenant, opts)).total;
    if (used + bytes > maxStorageBytes) throw storageQuotaExceeded(tenant, used, bytes, maxStorageBytes);
  }

  /**
   * Grants `bytes` to an upload of `tenant` until the returned release is called (after the
   * install, or on failure), or throws 403 quota_exceeded. Unlike ensureRoom this is exact under
   * concurrency, across API processes: what concurrent uploads were granted counts as used
   * (StorageHolds).
   */
  async reserve(tenant: string, bytes: number): Promise<StorageRelease> {
    const maxStorageBytes = await this.limitOf(tenant);
    if (maxStorageBytes === null) return nothingToRelease;
    const holdId = randomUUID();
    for (let attempt = 0; attempt < RESERVE_ATTEMPTS; attempt++) {
      const generation = await this.holds.generation(tenant);
      const used = (await this.usage.bytes(tenant)).total;
      const result = await this.holds.grant(tenant, generation, holdId, bytes, used, maxStorageBytes);
      if ('stale' in result) continue;
      if (!result.granted) throw storageQuotaExceeded(tenant, used + result.heldByOthers, bytes, maxStorageBytes);
      return () => this.holds.release(tenant, holdId);
    }
    throw new UnavailableError('storage_busy', `Other uploads of tenant "${tenant}" kept finishing while this one was checked against its storage quota; retry.`, RETRY_AFTER_SECONDS);
  }

  /** The tenant's storage quota in bytes; null when nothing limits it (unlimited, or the public namespace). */
  private async limitOf(tenant: string, opts: { recent?: boolean } = {}): Promise<number | null> {
    if (tenant === PUBLIC_TENANT) return null;
    const { maxStorageBytes } = await this.quotas.get(tenant, opts);
    return maxStorageBytes > 0 ? maxStorageBytes : null;
  }

  /** Counts the start of an upload: 429 over the per-minute rate, 403 if the declared size alone would go over storage. */
  async admitUpload(tenant: string, declaredBytes: number | null): Promise<void> {
    const { uploadsPerMinute } = await this.quotas.get(tenant);
    await this.ensureRoom(tenant, declaredBytes ?? 0);
    await this.rate.take(tenant, uploadsPerMinute);
  }

  /** What GET /v1/tenants/{tenant} reports. */
  async report(tenant: string) {
    const [quotas, storage, uploadsThisMinute] = await Promise.all([this.quotas.get(tenant), this.usage.bytes(tenant), this.rate.used(tenant)]);
    return { tenant, quotas, usage: { storageBytes: storage.total, datasetBytes: storage.datasets, checkpointBytes: storage.checkpoints, uploadsThisMinute } };
  }
}
