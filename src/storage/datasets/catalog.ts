import { promises as fs } from 'node:fs';
import path from 'node:path';
import { UnprocessableError, isGraftError } from '../../errors';
import type { DataLayout } from '../layout';
import { isValidName } from '../names';
import { DescriptionStore, type FolderInfo, type StoredDescription } from './description-store';
import { formatOf } from './formats';
import { DEFAULT_DATASET_LIMITS } from './limits';
import { scanDataset } from './scan';
import { DATASET_PARAM, datasetNotFound, type DatasetContent, type DatasetLimits, type ImageShape } from './types';

/**
 * The datasets under DATA_DIR/tenants/<tenant>/datasets/<name>/ as the API (and the worker's submission-time
 * checks) see them. Descriptions are computed once and stored (description-store.ts), so listing
 * and submitting read a small JSON file, not the dataset. The HTTP shapes are in src/api/schemas.
 */

/** A dataset folder described wherever it is (an upload's staging folder included). */
export type DatasetFolderDescription = { name: string } & DatasetContent & FolderInfo;
/** A dataset of a tenant (or of the public namespace). */
export type DatasetDescription = { name: string; tenant: string } & DatasetContent & FolderInfo;

export interface DatasetSummary {
  name: string;
  /** The namespace it lives in: the caller's tenant, or `public`. */
  tenant: string;
  format: string | null;
  inputShape: ImageShape | null;
  numClasses: number | null;
  trainCount: number | null;
  /** null when the dataset has no test split. */
  testCount: number | null;
  sizeBytes: number;
  createdAt: string;
  /** Why the dataset cannot be used; the fields that need a valid dataset are then null. */
  error: { code: string; message: string; param: string | null } | null;
}

/** The datasets of one tenant (the layout's); `forTenant` gives another tenant's (or `public`). */
export class DatasetCatalog {
  private readonly descriptions: DescriptionStore;
  private readonly views: Map<string, DatasetCatalog>;

  constructor(
    private readonly layout: DataLayout,
    private readonly limits: DatasetLimits = DEFAULT_DATASET_LIMITS,
    views?: Map<string, DatasetCatalog>,
  ) {
    this.descriptions = new DescriptionStore(layout);
    this.views = views ?? new Map([[layout.tenant, this]]);
  }

  get tenant(): string {
    return this.layout.tenant;
  }

  forTenant(tenant: string): DatasetCatalog {
    let view = this.views.get(tenant);
    if (!view) {
      view = new DatasetCatalog(this.layout.forTenant(tenant), this.limits, this.views);
      this.views.set(tenant, view);
    }
    return view;
  }

  /** True if datasets/<name>/ is a folder (valid or not); false for names that are not valid names. */
  async exists(name: string): Promise<boolean> {
    if (!isValidName(name)) return false;
    const stat = await fs.stat(this.layout.datasetDir(name)).catch(() => null);
    return stat?.isDirectory() ?? false;
  }

  /** Throws dataset_not_found, or the (stored) dataset_invalid error of a dataset that cannot be used. */
  async describe(name: string): Promise<DatasetDescription> {
    const stored = await this.stored(name);
    if (stored.error) {
      const { code, message, param, details } = stored.error;
      throw new UnprocessableError(code, message, param, details);
    }
    return { name, tenant: this.tenant, ...stored.content!, ...stored.folder };
  }

  /** Every dataset, sorted by name. A broken dataset is listed with its error rather than hiding the others. */
  async list(): Promise<DatasetSummary[]> {
    const entries = await fs.readdir(this.layout.datasetsDir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    const names = entries.filter((e) => e.isDirectory() && isValidName(e.name)).map((e) => e.name).sort();
    const summaries = await Promise.all(names.map((name) => this.summarize(name)));
    return summaries.filter((s): s is DatasetSummary => s !== null);
  }

  /**
   * Deletes dataset `name` and its stored description: renamed away in one step (readers see it
   * whole or not at all), then deleted. Whether a job still needs it is the caller's question.
   */
  async remove(name: string): Promise<void> {
    const removed = await this.layout.removeDir(this.layout.datasetDir(name, '/name'), `dataset-${name}`);
    await this.descriptions.remove(name);
    if (!removed) throw notFound(name);
  }

  /** Keeps the description an upload computed in staging for the dataset now live under `name`. */
  async remember(description: DatasetFolderDescription): Promise<void> {
    const { name, sizeBytes, createdAt, ...content } = description;
    await this.descriptions.remember(name, this.layout.datasetDir(name), { folder: { sizeBytes, createdAt }, content });
  }

  private async stored(name: string): Promise<StoredDescription> {
    const dir = this.layout.datasetDir(name, DATASET_PARAM);
    const stat = await fs.stat(dir).catch(() => null);
    if (!stat?.isDirectory()) throw notFound(name);
    const stored = await this.descriptions.read(name, dir);
    if (stored) return stored;
    return this.descriptions.compute(name, dir, () => describeFolder(dir, name, this.limits)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw notFound(name); // deleted while being described
      throw err;
    });
  }

  /** null if the dataset was deleted while listing. */
  private async summarize(name: string): Promise<DatasetSummary | null> {
    let stored: StoredDescription;
    try {
      stored = await this.stored(name);
    } catch (err) {
      if (isGraftError(err) && err.code === 'dataset_not_found') return null;
      throw err;
    }
    const { folder, content, error } = stored;
    if (error || !content) {
      const body = { code: error!.code, message: error!.message, param: error!.param };
      return { name, tenant: this.tenant, format: null, inputShape: null, numClasses: null, trainCount: null, testCount: null, ...folder, error: body };
    }
    return {
      name,
      tenant: this.tenant,
      format: content.format,
      inputShape: content.inputShape,
      numClasses: content.numClasses,
      trainCount: content.splits.train.count,
      testCount: content.splits.test?.count ?? null,
      ...folder,
      error: null,
    };
  }
}

const notFound = datasetNotFound;

/**
 * Reads a dataset folder's description from scratch. A dataset that cannot be used (422) is
 * described by its error, which is stored like a description; other failures are thrown.
 */
async function describeFolder(dir: string, name: string, limits: DatasetLimits): Promise<StoredDescription> {
  try {
    const { name: _name, sizeBytes, createdAt, ...content } = await describeDatasetFolder(dir, name, limits);
    return { folder: { sizeBytes, createdAt }, content };
  } catch (err) {
    if (!(isGraftError(err) && err.statusCode === 422)) throw err;
    return { folder: await folderInfo(dir), error: err.toJSON() };
  }
}

/** The description of a dataset folder anywhere (an upload's staging folder), nothing stored. */
export async function describeDatasetFolder(dir: string, name: string, limits: DatasetLimits): Promise<DatasetFolderDescription> {
  const files = await scanDataset(dir, name);
  const [content, folder] = await Promise.all([formatOf(files).describe(files, limits), folderInfo(dir)]);
  return { name, ...content, ...folder };
}

async function folderInfo(dir: string): Promise<FolderInfo> {
  const [stat, sizeBytes] = await Promise.all([fs.stat(dir), folderSize(dir)]);
  // birthtime is 0 on filesystems that do not record it.
  const created = stat.birthtimeMs > 0 ? stat.birthtime : stat.mtime;
  return { sizeBytes, createdAt: created.toISOString() };
}

async function folderSize(dir: string): Promise<number> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  // stat opens no file descriptor, so an unbounded fan-out only queues work on libuv's pool.
  const sizes = await Promise.all(
    entries.map((e) => {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) return folderSize(p);
      if (e.isFile()) return fs.stat(p).then((s) => s.size);
      return 0;
    }),
  );
  return sizes.reduce((a, b) => a + b, 0);
}
