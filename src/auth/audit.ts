import type { Principal } from './principal';

/**
 * Who created, cancelled, deleted or published what (issue 11): written by the routes and services
 * that do those things, read by admins at GET /v1/audit, kept for JOB_RETENTION_SECONDS.
 */
export interface AuditEntry {
  actor: Principal;
  /** e.g. job.create, job.cancel, dataset.create, dataset.delete, checkpoint.delete, checkpoint.publish, key.create, key.revoke, tenant.quota */
  action: string;
  target: { kind: 'job' | 'dataset' | 'checkpoint' | 'key' | 'tenant'; tenant: string; id: string };
  details?: Record<string, unknown>;
}

export interface AuditSink {
  record(entry: AuditEntry): Promise<void>;
}
