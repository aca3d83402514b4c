import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DEFAULT_TENANT, PUBLIC_TENANT, TENANT_PATTERN } from '../auth/principal';
import { ConflictError, ValidationError } from '../errors';
import { checkpointNotFound } from './checkpoints/catalog';
import { datasetNotFound } from './datasets/types';
import { migrateLegacyLayout } from './migrate';
import { assertValidName, childDir } from './names';

const TENANT_RE = new RegExp(TENANT_PATTERN);

/**
 * The volume layout. Everything graft stores lives under one root so that api and workers on
 * different hosts only need to share this folder. Datasets and checkpoints belong to a tenant;
 * per-job folders and staging are global (job ids and staging names are unique):
 *
 *   tenants/<tenant>/datasets/<name>/        tenants/<tenant>/checkpoints/<name>/
 *   tenants/<tenant>/.meta/datasets/<name>.json   (stored dataset descriptions)
 *   tenants/public/...                        (the read-only shared namespace)
 *   jobs/<id>/                                .tmp/<random>/ (staging for atomic writes)
 *
 * A DataLayout is the view of one tenant (DEFAULT_TENANT unless given): `forTenant` returns the
 * view of another on the same root. Volumes written before tenants (datasets/, checkpoints/ and
 * .meta/datasets/ at the root) are moved into tenants/default/ by `ensure()` (migrate.ts).
 */
export class DataLayout {
  readonly root: string;
  readonly tenant: string;
  /** tenants/<tenant>/ */
  readonly tenantDir: string;
  readonly datasetsDir: string;
  readonly checkpointsDir: string;
  /** Stored dataset descriptions (description-store.ts). */
  readonly datasetMetaDir: string;
  readonly tmpDir: string;
  private readonly views: Map<string, DataLayout>;

  constructor(root: string, tenant: string = DEFAULT_TENANT, views?: Map<string, DataLayout>) {
    if (!isValidTenant(tenant)) throw new ValidationError('invalid_tenant', `${JSON.stringify(tenant)} is not a valid tenant id.`, null);
    this.root = path.resolve(root);
    this.tenant = tenant;
    this.tenantDir = path.join(this.root, 'tenants', tenant);
    this.datasetsDir = path.join(this.tenantDir, 'datasets');
    this.checkpointsDir = path.join(this.tenantDir, 'checkpoints');
    this.datasetMetaDir = path.join(this.tenantDir, '.meta', 'datasets');
    this.tmpDir = path.join(this.root, '.tmp');
    this.views = views ?? new Map([[tenant, this]]);
  }

  /** The same volume as seen by `tenant` (views are shared, so per-tenant caches can hang on them). */
  forTenant(tenant: string): DataLayout {
    let view = this.views.get(tenant);
    if (!view) {
      view = new DataLayout(this.root, tenant, this.views);
      this.views.set(tenant, view);
    }
    return view;
  }

  /** The shared read-only namespace. */
  get publicLayout(): DataLayout {
    return this.forTenant(PUBLIC_TENANT);
  }

  /**
   * Migrates a pre-tenant volume (once; harmless to repeat and to run from several processes at
   * once), then creates the folders this tenant and the public namespace need.
   */
  async ensure(): Promise<void> {
    await migrateLegacyLayout(this.root);
    const pub = this.publicLayout;
    await Promise.all([this.datasetsDir, this.checkpointsDir, pub.datasetsDir, pub.checkpointsDir, this.tmpDir].map((d) => fs.mkdir(d, { recursive: true })));
  }

  datasetDir(name: string, param = '/dataset/name'): string {
    return childDir(this.datasetsDir, assertValidName(name, param));
  }

  checkpointDir(name: string, param = '/output/checkpoint'): string {
    return childDir(this.checkpointsDir, assertValidName(name, param));
  }

  /**
   * Where a reference in a spec points, seen from this tenant: `<name>` is this tenant's object,
   * `public/<name>` the shared one. Any other `<tenant>/<name>` is null: callers report it exactly
   * as a name that does not exist, so nobody learns what another tenant holds.
   */
  resolveRef(ref: string): { layout: DataLayout; name: string } | null {
    const ns = parseRef(ref, this.tenant);
    return ns && { layout: this.forTenant(ns.tenant), name: ns.name };
  }

  /** resolveRef for a spec's `dataset.name`: another tenant's name throws what a missing name does. */
  datasetRef(ref: string): { layout: DataLayout; name: string } {
    const target = this.resolveRef(ref);
    if (!target) throw datasetNotFound(ref);
    return target;
  }

  /** resolveRef for a spec's `source.checkpoint`: another tenant's name throws what a missing name does. */
  checkpointRef(ref: string): { layout: DataLayout; name: string } {
    const target = this.resolveRef(ref);
    if (!target) throw checkpointNotFound(ref);
    return target;
  }

  /** A fresh private staging folder on the same filesystem as the final location (so rename is atomic). */
  async makeStagingDir(prefix: string): Promise<string> {
    await fs.mkdir(this.tmpDir, { recursive: true });
    const dir = path.join(this.tmpDir, `${prefix}-${randomUUID()}`);
    await fs.mkdir(dir);
    return dir;
  }

  /**
   * Removes `dir` the way readers can rely on: one rename moves it out of sight (into .tmp), then
   * it is deleted at leisure. False if it did not exist.
   */
  async removeDir(dir: string, label: string): Promise<boolean> {
    await fs.mkdir(this.tmpDir, { recursive: true });
    const trash = path.join(this.tmpDir, `deleted-${label}-${randomUUID()}`);
    try {
      await fs.rename(dir, trash);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw err;
    }
    await fs.rm(trash, { recursive: true, force: true });
    return true;
  }

  /**
   * Fills a staging folder with `fill`, then renames it to `finalDir` in one step: readers see
   * either nothing or the complete folder, and a crash leaves only garbage under `.tmp`.
   * If `finalDir` already exists the staging folder is discarded and a ConflictError is thrown.
   */
  async writeDirAtomically(finalDir: string, fill: (stagingDir: string) => Promise<void>, what = 'checkpoint'): Promise<void> {
    const staging = await this.makeStagingDir(path.basename(finalDir));
    try {
      await fill(staging);
      await fs.mkdir(path.dirname(finalDir), { recursive: true });
      await renameNoReplace(staging, finalDir, what);
    } catch (err) {
      await fs.rm(staging, { recursive: true, force: true });
      throw err;
    }
  }
}

export function isValidTenant(tenant: unknown): tenant is string {
  return typeof tenant === 'string' && TENANT_RE.test(tenant);
}

/**
 * `<name>` → (tenant, name); `public/<name>` → (public, name); `<tenant>/<name>` for the caller's
 * own tenant → (tenant, name). Any other prefix, or more than one '/', is null (not found).
 */
export function parseRef(ref: string, tenant: string): { tenant: string; name: string } | null {
  const slash = ref.indexOf('/');
  if (slash < 0) return { tenant, name: ref };
  const ns = ref.slice(0, slash);
  const name = ref.slice(slash + 1);
  if (name.includes('/')) return null;
  if (ns === PUBLIC_TENANT || ns === tenant) return { tenant: ns, name };
  return null;
}

/** Moves a fully written folder into place; a ConflictError `<what>_exists` if the name is taken. */
export async function renameNoReplace(from: string, to: string, what: string): Promise<void> {
  // rename(2) replaces an *empty* directory silently; refuse that explicitly so "immutable once
  // written" holds even against a stray empty folder.
  const exists = await fs.stat(to).then(() => true, () => false);
  if (exists) throw new ConflictError(`${what}_exists`, `A ${what} named "${path.basename(to)}" already exists.`);
  try {
    await fs.rename(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      throw new ConflictError(`${what}_exists`, `A ${what} named "${path.basename(to)}" already exists.`);
    }
    throw err;
  }
}
