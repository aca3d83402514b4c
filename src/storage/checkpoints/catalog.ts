import { promises as fs } from 'node:fs';
import path from 'node:path';
import { NotFoundError, UnprocessableError } from '../../errors';
import type { DataLayout } from '../layout';
import { isValidName } from '../names';
import { deriveInputShape, deriveLayers, paramsOf } from './layer-table';
import { MANIFEST_FILE, MODEL_FILE, type CheckpointManifest, type LayerSummary, type TASKS, type WeightShape } from './manifest';
import { allWeightSpecs, corruptCheckpoint, parseManifest, parseModelJson, type ModelJson } from './parse';

/**
 * The checkpoints the API serves. Cheap reads only: hashes are verified where weights are used
 * (workers/engine/checkpoint-io.ts). The HTTP shapes of these types are in src/api/schemas.
 */

export interface CheckpointSummary {
  name: string;
  /** The namespace it lives in: the caller's tenant, or `public`. */
  tenant: string;
  /** From the manifest, else the folder time. */
  createdAt: string;
  jobId: string | null;
  task: (typeof TASKS)[number] | null;
  /** null when model.json cannot be read. */
  params: number | null;
  inputShape: number[] | null;
  sizeBytes: number;
}

export interface CheckpointDescription {
  name: string;
  tenant: string;
  createdAt: string;
  sizeBytes: number;
  inputShape: number[] | null;
  layers: LayerSummary[];
  /** null for a checkpoint without manifest.json. */
  manifest: CheckpointManifest | null;
}

/** The checkpoints of one tenant (the layout's); `forTenant` gives another tenant's (or `public`). */
export class CheckpointCatalog {
  private readonly views: Map<string, CheckpointCatalog>;

  constructor(
    private readonly layout: DataLayout,
    views?: Map<string, CheckpointCatalog>,
  ) {
    this.views = views ?? new Map([[layout.tenant, this]]);
  }

  get tenant(): string {
    return this.layout.tenant;
  }

  forTenant(tenant: string): CheckpointCatalog {
    let view = this.views.get(tenant);
    if (!view) {
      view = new CheckpointCatalog(this.layout.forTenant(tenant), this.views);
      this.views.set(tenant, view);
    }
    return view;
  }

  /** Whether the name is taken, even by a corrupt checkpoint. */
  async exists(name: string): Promise<boolean> {
    return isValidName(name) && isDirectory(this.layout.checkpointDir(name));
  }

  async list(): Promise<CheckpointSummary[]> {
    const entries = await fs.readdir(this.layout.checkpointsDir, { withFileTypes: true }).catch(ignoreMissing([]));
    const names = entries.filter((e) => e.isDirectory() && isValidName(e.name)).map((e) => e.name).sort();
    const summaries = await Promise.all(names.map((name) => this.summary(name)));
    return summaries.filter((s): s is CheckpointSummary => s !== null);
  }

  async describe(name: string): Promise<CheckpointDescription> {
    const dir = await this.folder(name);
    const [manifest, info] = await Promise.all([readManifest(dir), folderInfo(dir)]);
    const base = { name, tenant: this.tenant, createdAt: manifest?.createdAt ?? info.modifiedAt, sizeBytes: info.sizeBytes };
    if (manifest) return { ...base, inputShape: manifest.inputShape ?? null, layers: manifest.layers, manifest };
    const model = await readModelJson(dir);
    return { ...base, inputShape: deriveInputShape(model), layers: deriveLayers(model), manifest: null };
  }

  /** Weight names and shapes from model.json, for checking a restore regex at submission time. */
  async weightNames(name: string): Promise<WeightShape[]> {
    const model = await readModelJson(await this.folder(name));
    return allWeightSpecs(model).map((s) => ({ name: s.name, shape: [...s.shape] }));
  }

  /** Topology and weight shapes without values: what a dry run (POST /v1/plans) needs. */
  async structure(name: string): Promise<{ modelTopology: unknown; weights: WeightShape[] }> {
    const model = await readModelJson(await this.folder(name));
    return { modelTopology: model.modelTopology, weights: allWeightSpecs(model).map((s) => ({ name: s.name, shape: [...s.shape] })) };
  }

  /**
   * Deletes checkpoint `name`: renamed away in one step (readers see it whole or not at all),
   * then deleted at leisure. Whether a job still needs it is the caller's question.
   */
  async remove(name: string): Promise<void> {
    if (!(await this.layout.removeDir(this.layout.checkpointDir(name, '/name'), `checkpoint-${name}`))) throw notFound(name);
  }

  /** The folder of checkpoint `name` (to stream it as an archive); checkpoint_not_found if there is none. */
  async folder(name: string): Promise<string> {
    if (!(await this.exists(name))) throw notFound(name);
    return this.layout.checkpointDir(name);
  }

  /**
   * Where checkpoint `name` lives or would live, without looking (a hot path: prediction asks
   * its inference process, which reads the folder anyway and answers `checkpointNotFound`).
   */
  folderOf(name: string): string {
    if (!isValidName(name)) throw notFound(name);
    return this.layout.checkpointDir(name);
  }

  /** A checkpoint whose metadata cannot be read is still listed (its name is taken), with nulls. */
  private async summary(name: string): Promise<CheckpointSummary | null> {
    const dir = this.layout.checkpointDir(name);
    let info: FolderInfo;
    try {
      info = await folderInfo(dir);
    } catch (err) {
      if (isMissing(err)) return null; // removed since readdir
      throw err;
    }
    const summary: CheckpointSummary = { name, tenant: this.tenant, createdAt: info.modifiedAt, jobId: null, task: null, params: null, inputShape: null, sizeBytes: info.sizeBytes };
    try {
      const manifest = await readManifest(dir);
      if (manifest) {
        return {
          ...summary,
          createdAt: manifest.createdAt,
          jobId: manifest.jobId,
          task: manifest.task ?? null,
          params: manifest.layers.reduce((sum, l) => sum + l.params, 0),
          inputShape: manifest.inputShape ?? null,
        };
      }
      const model = await readModelJson(dir);
      return { ...summary, params: paramsOf(allWeightSpecs(model)), inputShape: deriveInputShape(model) };
    } catch (err) {
      if (err instanceof UnprocessableError) return summary;
      throw err;
    }
  }
}

function notFound(name: string): NotFoundError {
  return checkpointNotFound(name);
}

/** The one "no such checkpoint" error, for a missing name and for another tenant's alike. */
export function checkpointNotFound(ref: string): NotFoundError {
  return new NotFoundError('checkpoint_not_found', `There is no checkpoint "${ref}"; GET /v1/checkpoints lists them.`);
}

interface FolderInfo {
  sizeBytes: number;
  modifiedAt: string;
}

async function folderInfo(dir: string): Promise<FolderInfo> {
  const [stat, entries] = await Promise.all([fs.stat(dir), fs.readdir(dir, { withFileTypes: true })]);
  const sizes = await Promise.all(entries.filter((e) => e.isFile()).map((e) => fs.stat(path.join(dir, e.name)).then((s) => s.size)));
  return { sizeBytes: sizes.reduce((a, b) => a + b, 0), modifiedAt: stat.mtime.toISOString() };
}

async function readManifest(dir: string): Promise<CheckpointManifest | null> {
  const bytes = await fs.readFile(path.join(dir, MANIFEST_FILE)).catch(ignoreMissing(null));
  return bytes && parseManifest(dir, bytes, null);
}

async function readModelJson(dir: string): Promise<ModelJson> {
  const bytes = await fs.readFile(path.join(dir, MODEL_FILE)).catch(ignoreMissing(null));
  if (!bytes) throw corruptCheckpoint(dir, MODEL_FILE, 'is missing', null);
  return parseModelJson(dir, bytes, null);
}

async function isDirectory(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isDirectory(), ignoreMissing(false));
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** A `.catch` handler that turns "no such file" into `fallback` and rethrows anything else. */
function ignoreMissing<T>(fallback: T): (err: unknown) => T {
  return (err) => {
    if (isMissing(err)) return fallback;
    throw err;
  };
}
