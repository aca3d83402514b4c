import { Type } from 'typebox';
import { TENANT_PATTERN } from '../../auth/principal';

/** HTTP bodies of /v1/tenants (quotas and usage of a tenant). 0 means unlimited for every quota. */

export const TenantParams = Type.Object({ tenant: Type.String({ pattern: TENANT_PATTERN }) }, { additionalProperties: false });

const Limit = (description: string) => Type.Integer({ minimum: 0, description: `${description} 0 = unlimited.` });

export const TenantQuotasSchema = Type.Object(
  {
    maxStorageBytes: Limit('Bytes of datasets and checkpoints (default TENANT_MAX_STORAGE_BYTES).'),
    uploadsPerMinute: Limit('Uploads started per minute (default TENANT_UPLOADS_PER_MINUTE).'),
    maxActiveJobs: Limit('Queued + running jobs.'),
    maxConcurrentJobs: Limit('Running jobs at once.'),
  },
  { additionalProperties: false },
);

const Change = (description: string) => Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: `${description} null: back to the default.` }));

export const TenantQuotasUpdateSchema = Type.Object(
  {
    maxStorageBytes: Change('Bytes of datasets and checkpoints.'),
    uploadsPerMinute: Change('Uploads started per minute.'),
    maxActiveJobs: Change('Queued + running jobs.'),
    maxConcurrentJobs: Change('Running jobs at once.'),
  },
  { additionalProperties: false, description: 'Only the fields given change; 0 = unlimited.' },
);

export const TenantReportSchema = Type.Object({
  tenant: Type.String(),
  quotas: TenantQuotasSchema,
  usage: Type.Object({
    storageBytes: Type.Integer({ minimum: 0, description: 'datasetBytes + checkpointBytes.' }),
    datasetBytes: Type.Integer({ minimum: 0 }),
    checkpointBytes: Type.Integer({ minimum: 0 }),
    uploadsThisMinute: Type.Integer({ minimum: 0 }),
  }),
});
