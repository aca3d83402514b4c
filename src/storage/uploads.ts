import { randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Multipart } from '@fastify/multipart';
import { ConflictError, GraftError, UnprocessableError, ValidationError } from '../errors';
import { detectArchiveType, extractArchive } from './archive';
import type { CheckpointCatalog, CheckpointDescription } from './checkpoints';
import { describeDatasetFolder, type DatasetCatalog, type DatasetDescription, type DatasetLimits } from './datasets';
import { DataLayout, renameNoReplace } from './layout';
import { assertCreatableName } from './names';
import { UploadBudget, type UploadLimits, type UploadTicket } from './upload-budget';

export { TooManyUploadsError, uploadLimits, type UploadLimits } from './upload-budget';

/**
 * Datasets and checkpoints uploaded over REST, trusted with nothing: each upload is streamed to a
 * private staging folder under DATA_DIR/.tmp (never held in memory), unpacked there with every
 * archive rule enforced (archive.ts), validated as a whole, and only then renamed into place in
 * one step. A failure at any point deletes the staging folder: nothing half-written is visible,
 * and a name taken meanwhile (a concurrent upload) is a 409.
 *
 * Every resource an upload uses is budgeted (upload-budget.ts).
 */

/** Plain file names for the files of a multipart checkpoint upload. */
const CHECKPOINT_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * The untrusted part of an upload: decoding user files and loading a user network. The API runs
 * it in its bounded pool (src/api/untrusted-pool.ts), never on its own event loop.
 */
export interface UploadValidator {
  /** Every file of the dataset staged at `new DataLayout(stagingRoot).datasetDir(name)` must be readable as the job will read it (validateDatasetFolder). */
  dataset(stagingRoot: string, name: string, limits: DatasetLimits): Promise<void>;
  /** Verifies the checkpoint files in `stagedDir` and installs them as checkpoint `name` of `tenant` in DATA_DIR `dataDir`. */
  checkpoint(dataDir: string, name: string, stagedDir: string, uploadId: string, tenant: string): Promise<void>;
}

/** The storage quota of a tenant (src/tenants/storage-quota.ts). */
export interface UploadQuota {
  /**
   * Grants `bytes` to an upload of `tenant` until the returned function is called, counting what
   * concurrent uploads were granted; throws 403 quota_exceeded if they do not fit.
   */
  reserve(tenant: string, bytes: number): Promise<() => Promise<void>>;
}

/** Checkpoint names reserved by queued or running jobs (src/jobs/upload-reservations.ts). */
export interface OutputReservations {
  /** Holds tenant `tenant`'s checkpoint name `name` for the upload while `install` runs; a ConflictError if a job reserves it. */
  hold<T>(name: string, uploadId: string, install: () => Promise<T>, tenant?: string): Promise<T>;
}

interface ReceivedFile {
  filename: string;
  path: string;
}

export interface UploadServiceOptions {
  layout: DataLayout;
  limits: UploadLimits;
  validator: UploadValidator;
  datasets: DatasetCatalog;
  checkpoints: CheckpointCatalog;
  /** Output names reserved by queued or running jobs; without it uploads ignore them (tests of the upload path alone). */
  reservations?: OutputReservations;
  /** Per-tenant storage quota; without it uploads are bounded by the disk only. */
  quota?: UploadQuota;
}

export class UploadService {
  private readonly layout: DataLayout;
  private readonly limits: UploadLimits;
  private readonly validator: UploadValidator;
  private readonly datasets: DatasetCatalog;
  private readonly checkpoints: CheckpointCatalog;
  /** Without it, uploads ignore reservations (tests of the upload path alone). */
  private readonly reservations?: OutputReservations;
  private readonly quota?: UploadQuota;
  /** Slots, request bytes and free space: shared by every upload of this process. */
  readonly budget: UploadBudget;

  constructor(opts: UploadServiceOptions) {
    ({ layout: this.layout, limits: this.limits, validator: this.validator, datasets: this.datasets, checkpoints: this.checkpoints, reservations: this.reservations, quota: this.quota } = opts);
    this.budget = new UploadBudget(this.layout.root, this.limits);
  }

  /** See UploadBudget.admit. */
  admit(contentLength: number | null): Promise<UploadTicket> {
    return this.budget.admit(contentLength);
  }

  /**
   * A dataset of `tenant`. `signal` aborts the upload (the client went away): the staging folder
   * is deleted at once.
   */
  async uploadDataset(tenant: string, parts: AsyncIterableIterator<Multipart>, signal?: AbortSignal): Promise<DatasetDescription> {
    const datasets = this.datasets.forTenant(tenant);
    return this.withStaging('upload-dataset', async (staging) => {
      const { name, files } = await this.receive(parts, staging, signal);
      if (files.length !== 1) throw new ValidationError('too_many_files', 'Upload a dataset as exactly one .zip or .tar.gz file.', '/file');
      if (await datasets.exists(name)) throw new ConflictError('dataset_exists', `A dataset named "${name}" already exists.`, '/name');
      // Unpack into a DATA_DIR-shaped staging folder the validator can be handed.
      const root = new DataLayout(staging).datasetDir(name, '/name');
      await this.unpack(files[0].path, root);
      await this.budget.ensureRoom(0);
      return this.withQuota(tenant, await folderBytes(root), async () => {
        await this.validator.dataset(staging, name, this.limits.dataset);
        const description = await describeDatasetFolder(root, name, this.limits.dataset);
        const target = this.layout.forTenant(tenant).datasetDir(name, '/name');
        await fs.mkdir(path.dirname(target), { recursive: true }); // a tenant's first dataset
        await renameNoReplace(root, target, 'dataset');
        // Described once, here: listing it and submitting jobs on it read the stored description.
        await datasets.remember(description);
        return { ...description, tenant };
      });
    });
  }

  /** A checkpoint of `tenant`. */
  async uploadCheckpoint(tenant: string, parts: AsyncIterableIterator<Multipart>, signal?: AbortSignal): Promise<CheckpointDescription> {
    const checkpoints = this.checkpoints.forTenant(tenant);
    return this.withStaging('upload-checkpoint', async (staging) => {
      const { name, files } = await this.receive(parts, staging, signal);
      if (await checkpoints.exists(name)) throw new ConflictError('checkpoint_exists', `A checkpoint named "${name}" already exists.`, '/name');
      const dir = path.join(staging, 'checkpoint');
      if (files.length === 1 && (await detectArchiveType(files[0].path))) {
        await this.unpack(files[0].path, dir);
      } else {
        // model.json and its weight files as separate parts, named by their file names.
        await fs.mkdir(dir);
        const seen = new Set<string>();
        for (const f of files) {
          if (!CHECKPOINT_FILE.test(f.filename) || seen.has(f.filename)) {
            throw new ValidationError('invalid_file_name', `${JSON.stringify(f.filename)} is not a valid checkpoint file name (plain names such as model.json or group1-shard1of1.bin, each once).`, '/file');
          }
          seen.add(f.filename);
          await fs.rename(f.path, path.join(dir, f.filename));
        }
      }
      // The checkpoint is written once more (with its manifest) when installed.
      const bytes = await folderBytes(dir);
      await this.budget.ensureRoom(bytes);
      return this.withQuota(tenant, bytes, async () => {
        const uploadId = `upload-${randomUUID()}`;
        const install = () => this.validator.checkpoint(this.layout.root, name, dir, uploadId, tenant);
        await (this.reservations ? this.reservations.hold(name, uploadId, install, tenant) : install());
        return checkpoints.describe(name);
      });
    });
  }

  /** Runs `install` with `bytes` of `tenant`'s storage quota granted to it (released once it is in place or has failed). */
  private async withQuota<T>(tenant: string, bytes: number, install: () => Promise<T>): Promise<T> {
    const release = await this.quota?.reserve(tenant, bytes);
    try {
      return await install();
    } finally {
      // A release that cannot reach Redis must not turn an installed upload into an error: the
      // hold then lapses on its own (StorageHolds' holdMs), counting a little too much until then.
      await release?.().catch(() => undefined);
    }
  }

  /** Streams every part of a multipart request into `staging`; returns the `name` field and the files. */
  private async receive(parts: AsyncIterableIterator<Multipart>, staging: string, signal?: AbortSignal): Promise<{ name: string; files: ReceivedFile[] }> {
    let name: string | undefined;
    const files: ReceivedFile[] = [];
    const counter = this.budget.requestCounter();
    for await (const part of abortable(parts, signal)) {
      if (part.type === 'file') {
        if (files.length >= this.limits.maxFiles) {
          throw new GraftError('upload_too_large', `An upload has at most ${this.limits.maxFiles} files (UPLOAD_MAX_FILES).`, { statusCode: 413 });
        }
        const dest = path.join(staging, `part-${files.length}`);
        await pipeline(part.file, counter.stream(), createWriteStream(dest, { flags: 'wx' }), { signal });
        files.push({ filename: part.filename, path: dest });
      } else if (part.fieldname === 'name') {
        name = String(part.value);
      } else {
        throw new ValidationError('unknown_field', `Unknown form field \`${part.fieldname}\`; expected \`name\` and file parts.`, `/${part.fieldname}`);
      }
    }
    if (name === undefined) throw new ValidationError('missing_field', 'The form field `name` is required.', '/name');
    assertCreatableName(name, '/name');
    if (files.length === 0) throw new ValidationError('missing_file', 'Attach the data as a file part (a .zip or .tar.gz archive).', '/file');
    // Unpacking writes at least as much again as the archives hold.
    await this.budget.ensureRoom(counter.total);
    return { name, files };
  }

  private async withStaging<T>(prefix: string, fn: (staging: string) => Promise<T>): Promise<T> {
    const staging = await this.layout.makeStagingDir(prefix);
    try {
      return await fn(staging);
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
    }
  }

  private async unpack(archive: string, dest: string): Promise<void> {
    if (!(await detectArchiveType(archive))) {
      throw new UnprocessableError('archive_invalid', 'The file is not a .zip, .tar.gz or .tar archive.', '/file');
    }
    await fs.mkdir(dest, { recursive: true });
    try {
      await extractArchive(archive, dest, this.limits.archive);
    } catch (err) {
      // Point the client at the part to fix: the uploaded file.
      if (err instanceof GraftError && err.param === null) throw new GraftError(err.code, err.message, { param: '/file', statusCode: err.statusCode });
      throw err;
    }
    await fs.rm(archive, { force: true });
    await unwrapSingleFolder(dest);
  }

}

/**
 * `parts`, ending with the signal's reason as soon as it aborts: a parser waiting for bytes from
 * a client that has gone away would otherwise hold its upload slot forever.
 */
async function* abortable<T>(parts: AsyncIterator<T>, signal?: AbortSignal): AsyncGenerator<T> {
  if (!signal) {
    for (let r = await parts.next(); !r.done; r = await parts.next()) yield r.value;
    return;
  }
  let onAbort: () => void = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => {}); // rejected only when raced below
  try {
    for (let r = await Promise.race([parts.next(), aborted]); !r.done; r = await Promise.race([parts.next(), aborted])) yield r.value;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

async function folderBytes(dir: string): Promise<number> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  const sizes = await Promise.all(entries.filter((e) => e.isFile()).map((e) => fs.stat(path.join(e.parentPath, e.name)).then((s) => s.size)));
  return sizes.reduce((a, b) => a + b, 0);
}

/** An archive of a folder usually holds that folder: use its content as the root. */
async function unwrapSingleFolder(dir: string): Promise<void> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  if (entries.length !== 1 || !entries[0].isDirectory()) return;
  const inner = path.join(dir, entries[0].name);
  const moved = `${dir}.unwrap`;
  await fs.rename(inner, moved);
  await fs.rm(dir, { recursive: true });
  await fs.rename(moved, dir);
}
