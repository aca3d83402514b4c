import { GraftError } from '../errors';

/**
 * Over a tenant quota, in the error shape: `quota_exceeded` naming the quota (its config variable)
 * and its numbers in the message and in `details`. Storage is a 403 (waiting does not help: delete
 * something or ask an admin); a rate is a 429 with Retry-After.
 */
export function storageQuotaExceeded(tenant: string, used: number, requested: number, limit: number): GraftError {
  return new GraftError(
    'quota_exceeded',
    `Tenant "${tenant}" would exceed its storage quota (TENANT_MAX_STORAGE_BYTES): ${used} bytes used + ${requested} requested > ${limit} bytes allowed. Delete datasets or checkpoints, or ask an admin to raise the quota.`,
    { statusCode: 403, param: null, details: { quota: 'maxStorageBytes', used, requested, limit } },
  );
}

export function uploadRateExceeded(tenant: string, used: number, limit: number, retryAfterSeconds: number): GraftError {
  return new GraftError('quota_exceeded', `Tenant "${tenant}" may start ${limit} uploads per minute (TENANT_UPLOADS_PER_MINUTE) and has started ${used}; retry in ${retryAfterSeconds} s.`, {
    statusCode: 429,
    param: null,
    retryAfterSeconds,
    details: { quota: 'uploadsPerMinute', used, limit },
  });
}
