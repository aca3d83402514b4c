import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PUBLIC_TENANT } from '../auth/principal';
import { ConflictError } from '../errors';
import { checkpointNotFound, type CheckpointCatalog, type CheckpointDescription } from './checkpoints';
import type { DatasetCatalog, DatasetDescription } from './datasets';
import { datasetNotFound } from './datasets/types';
import type { DataLayout } from './layout';

/**
 * Publishing: an admin copies a tenant's dataset or checkpoint into the read-only public
 * namespace (tenants/public/), where every tenant can read and train from it. The copy is built in
 * a staging folder and renamed into place in one step, so the public object appears whole or not
 * at all, and a public name is never overwritten (409 `<kind>_exists`). Files are hard-linked
 * where the filesystem allows: objects are immutable once written (a delete renames the folder
 * away, which leaves the other links intact), so a shared model costs no second copy of its bytes.
 */
export class Publisher {
  constructor(
    private readonly layout: DataLayout,
    private readonly checkpoints: CheckpointCatalog,
    private readonly datasets: DatasetCatalog,
  ) {}

  async checkpoint(from: string, name: string, as: string): Promise<CheckpointDescription> {
    if (!(await this.checkpoints.forTenant(from).exists(name))) throw checkpointNotFound(name);
    const target = this.layout.publicLayout.checkpointDir(as, '/as');
    await this.refuseTaken(target, 'checkpoint', as);
    await this.copy(this.layout.forTenant(from).checkpointDir(name, '/name'), target, 'checkpoint');
    return this.checkpoints.forTenant(PUBLIC_TENANT).describe(as);
  }

  async dataset(from: string, name: string, as: string): Promise<DatasetDescription> {
    const source = this.datasets.forTenant(from);
    if (!(await source.exists(name))) throw datasetNotFound(name);
    // A dataset that cannot be used (422) is not worth sharing.
    const { tenant: _tenant, ...description } = await source.describe(name);
    const target = this.layout.publicLayout.datasetDir(as, '/as');
    await this.refuseTaken(target, 'dataset', as);
    await this.copy(this.layout.forTenant(from).datasetDir(name, '/name'), target, 'dataset');
    const published = this.datasets.forTenant(PUBLIC_TENANT);
    await published.remember({ ...description, name: as });
    return published.describe(as);
  }

  private async refuseTaken(dir: string, kind: 'checkpoint' | 'dataset', as: string): Promise<void> {
    if (await fs.stat(dir).then(() => true, () => false)) {
      throw new ConflictError(`${kind}_exists`, `A public ${kind} named "${as}" already exists; publish under another name ({"as": "<name>"}) or delete it first.`, '/as');
    }
  }

  private async copy(from: string, to: string, what: 'checkpoint' | 'dataset'): Promise<void> {
    await this.layout.writeDirAtomically(to, (staging) => linkTree(from, staging), what);
  }
}

async function linkTree(src: string, dst: string): Promise<void> {
  await fs.mkdir(dst, { recursive: true });
  for (const entry of await fs.readdir(src, { withFileTypes: true })) {
    const s = path.join(src, entry.name);
    const d = path.join(dst, entry.name);
    if (entry.isDirectory()) await linkTree(s, d);
    else if (entry.isFile()) await fs.link(s, d).catch(() => fs.copyFile(s, d));
    // Links and devices are never part of an object (uploads refuse them): skipped.
  }
}
