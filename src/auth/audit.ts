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

/** An audit entry as read back: its stream id (the paging cursor) and time. */
export interface StoredAuditEntry extends AuditEntry {
  id: string;
  at: string;
  details: Record<string, unknown>;
}

export interface AuditQuery {
  /** Entries after this id (exclusive), oldest first. */
  after?: string;
  limit: number;
  /** The actor's or the target's tenant. */
  tenant?: string;
  action?: string;
}

/** One entry as the Redis command that appends it, for a script that writes it in the same step as the change it records. */
export interface AuditWrite {
  stream: string;
  /** Entries older than this stream id are trimmed (MINID ~). */
  minId: string;
  /** Field, value, field, value... */
  fields: string[];
}

/** The audit log as the API holds it: written by routes and services, read by GET /v1/audit. */
export interface AuditLog extends AuditSink {
  list(q: AuditQuery): Promise<{ entries: StoredAuditEntry[]; next: string | null }>;
  /**
   * The entry as a write another Redis script performs (create.lua records job.create with the
   * job itself: one round trip, and no job without its audit entry). Absent: callers use record().
   */
  prepare?(entry: AuditEntry): AuditWrite;
}
