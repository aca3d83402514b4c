import { PUBLIC_TENANT } from '../auth/principal';
import { storageQuotaExceeded } from './quota-errors';
import type { TenantQuotas } from './quotas';
import type { StorageUsage } from './storage-usage';
import type { UploadRate } from './upload-rate';

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
  ) {}

  /**
   * Throws 403 quota_exceeded if `tenant` storing `bytes` more would go over its storage quota.
   * `recent`: a usage measured up to USAGE_RECHECK_MS ago will do (job submissions; uploads measure).
   */
  async ensureRoom(tenant: string, bytes: number, opts: { recent?: boolean } = {}): Promise<void> {
    if (tenant === PUBLIC_TENANT) return;
    const { maxStorageBytes } = await this.quotas.get(tenant, opts);
    if (maxStorageBytes <= 0) return;
    const used = (await this.usage.bytes(tenant, opts)).total;
    if (used + bytes > maxStorageBytes) throw storageQuotaExceeded(tenant, used, bytes, maxStorageBytes);
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
