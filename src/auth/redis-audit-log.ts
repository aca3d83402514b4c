import type { Redis } from 'ioredis';
import type { JobKeys } from '../jobs/keys';
import type { AuditEntry, AuditLog, AuditQuery, AuditWrite, StoredAuditEntry } from './audit';

/** Stream entries read per round while filtering (bounded work per request). */
const SCAN_BATCH = 500;
const SCAN_MAX_ROUNDS = 20;

/**
 * The audit log (issue 11) as one Redis stream under the queue's namespace. Stream ids are
 * milliseconds, so each write trims entries older than JOB_RETENTION_SECONDS with MINID (approximate
 * trimming: whole macro-nodes, cheap), and the id is the cursor admins page with.
 */
export class RedisAuditLog implements AuditLog {
  constructor(
    private readonly redis: Redis,
    private readonly keys: JobKeys,
    private readonly retentionSeconds: number,
  ) {}

  async record(entry: AuditEntry): Promise<void> {
    const { stream, minId, fields } = this.prepare(entry);
    await this.redis.xadd(stream, 'MINID', '~', minId, '*', ...fields);
  }

  prepare(entry: AuditEntry): AuditWrite {
    const minId = Math.max(0, Date.now() - this.retentionSeconds * 1000);
    return {
      stream: this.keys.audit,
      minId: String(minId),
      fields: [
        'actor',
        JSON.stringify({ keyId: entry.actor.keyId, keyName: entry.actor.keyName, tenant: entry.actor.tenant, role: entry.actor.role }),
        'action',
        entry.action,
        'target',
        JSON.stringify(entry.target),
        'details',
        JSON.stringify(entry.details ?? {}),
      ],
    };
  }

  /**
   * Entries after `after`, oldest first, at most `limit`, narrowed to a tenant (the actor's or the
   * target's) and/or an action. `next` is the id to continue after, null at the end; with filters
   * a page may be short (the scan per request is bounded) and still have a `next`.
   */
  async list(q: AuditQuery): Promise<{ entries: StoredAuditEntry[]; next: string | null }> {
    const entries: StoredAuditEntry[] = [];
    let cursor = q.after ?? '-';
    for (let round = 0; round < SCAN_MAX_ROUNDS; round++) {
      const start = cursor === '-' ? '-' : `(${cursor}`;
      const batch = q.tenant || q.action ? SCAN_BATCH : q.limit - entries.length;
      const rows = await this.redis.xrange(this.keys.audit, start, '+', 'COUNT', batch);
      for (const [id, fields] of rows) {
        cursor = id;
        const e = parse(id, fields);
        if (q.action && e.action !== q.action) continue;
        if (q.tenant && e.actor.tenant !== q.tenant && e.target.tenant !== q.tenant) continue;
        entries.push(e);
        if (entries.length === q.limit) return { entries, next: id };
      }
      if (rows.length < batch) return { entries, next: null };
    }
    return { entries, next: cursor === '-' ? null : cursor };
  }
}

function parse(id: string, fields: string[]): StoredAuditEntry {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
  return {
    id,
    at: new Date(Number(id.split('-')[0])).toISOString(),
    actor: JSON.parse(f.actor ?? '{}'),
    action: f.action ?? '',
    target: JSON.parse(f.target ?? '{}'),
    details: JSON.parse(f.details ?? '{}'),
  };
}
