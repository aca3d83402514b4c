import { promises as fs } from 'node:fs';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import type { DataLayout } from '../storage/layout';

/**
 * How long a tenant's measured usage is reused by checks that may be a little stale (a job
 * submission refused because the tenant is already over quota). Without it every POST /v1/jobs
 * would readdir and stat the tenant's folders (measured: a quarter of the submission's CPU).
 * Uploads measure afresh.
 */
export const USAGE_RECHECK_MS = 1000;
const USAGE_CACHE_TENANTS = 10_000;

export interface UsageBytes {
  datasets: number;
  checkpoints: number;
  total: number;
}

/**
 * Bytes a tenant stores (its datasets and checkpoints), for the storage quota. Objects are
 * immutable once renamed into place, so the size of one is remembered per folder identity
 * (path + inode + mtime) and a tenant's usage costs a readdir of its two folders and a stat per
 * object, not a walk of every file. Bounded: entries of objects that are gone are dropped.
 */
export class StorageUsage {
  /** Object folder path → its identity and size. */
  private readonly sizes = new Map<string, { stamp: string; bytes: number }>();

  /** Recent measurements per tenant; concurrent askers share one measurement (fetch coalesces). */
  private readonly recent = new LRUCache<string, UsageBytes>({ max: USAGE_CACHE_TENANTS, ttl: USAGE_RECHECK_MS, fetchMethod: (tenant) => this.measure(tenant) });

  constructor(private readonly layout: DataLayout) {}

  /** The tenant's usage; `recent` accepts a measurement up to USAGE_RECHECK_MS old. */
  async bytes(tenant: string, opts: { recent?: boolean } = {}): Promise<UsageBytes> {
    if (!opts.recent) {
      const fresh = await this.measure(tenant);
      this.recent.set(tenant, fresh);
      return fresh;
    }
    // A fresh measurement stored meanwhile (an upload's, above) aborts this fetch with "replaced"
    // (lru-cache cancels a fetch whose entry is set): this asker then measures for itself. That
    // abort reached a submission as a 500 when it raced an upload.
    return (await this.recent.fetch(tenant).catch(() => undefined)) ?? this.measure(tenant);
  }

  private async measure(tenant: string): Promise<UsageBytes> {
    const view = this.layout.forTenant(tenant);
    const [datasets, checkpoints] = await Promise.all([this.folderOfObjects(view.datasetsDir), this.folderOfObjects(view.checkpointsDir)]);
    return { datasets, checkpoints, total: datasets + checkpoints };
  }

  private async folderOfObjects(dir: string): Promise<number> {
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    const live = new Set<string>();
    const sizes = await Promise.all(
      entries
        .filter((e) => e.isDirectory())
        .map(async (e) => {
          const p = path.join(dir, e.name);
          live.add(p);
          const stat = await fs.stat(p).catch(() => null);
          if (!stat) return 0;
          const stamp = `${stat.ino}:${stat.mtimeMs}`;
          const known = this.sizes.get(p);
          if (known?.stamp === stamp) return known.bytes;
          const bytes = await treeBytes(p).catch(() => 0);
          this.sizes.set(p, { stamp, bytes });
          return bytes;
        }),
    );
    for (const key of this.sizes.keys()) if (path.dirname(key) === dir && !live.has(key)) this.sizes.delete(key);
    return sizes.reduce((a, b) => a + b, 0);
  }
}

async function treeBytes(dir: string): Promise<number> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  const sizes = await Promise.all(entries.filter((e) => e.isFile()).map((e) => fs.stat(path.join(e.parentPath, e.name)).then((s) => s.size, () => 0)));
  return sizes.reduce((a, b) => a + b, 0);
}
