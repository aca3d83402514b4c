import { randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Multipart } from '@fastify/multipart';
import sharp from 'sharp';
import { ConflictError, GraftError, UnprocessableError, ValidationError } from '../errors';
import { detectArchiveType, extractArchive, type ArchiveLimits } from './archive';
import { CheckpointCatalog, type CheckpointDescription } from './checkpoints';
import { DatasetCatalog, inspectIdx, locateDataset, type DatasetDescription } from './datasets';
import { DataLayout, renameNoReplace } from './layout';
import { assertValidName } from './names';

/**
 * Datasets and checkpoints uploaded over REST, trusted with nothing: each upload is streamed to a
 * private staging folder under DATA_DIR/.tmp (never held in memory), unpacked there with every
 * archive rule enforced (archive.ts), validated as a whole, and only then renamed into place in
 * one step. A failure at any point deletes the staging folder: nothing half-written is visible,
 * and a name taken meanwhile (a concurrent upload) is a 409.
 */
const MAX_PARTS = 256;
const DECODE_CONCURRENCY = 4;
/** Plain file names for the files of a multipart checkpoint upload. */
const CHECKPOINT_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * The untrusted part of an upload: decoding user files and loading a user network. The API runs
 * it in its bounded pool (src/api/untrusted-pool.ts), never on its own event loop.
 */
export interface UploadValidator {
  /** Every file of the dataset staged at `<stagingRoot>/datasets/<name>` must be readable as the job will read it. */
  dataset(stagingRoot: string, name: string): Promise<void>;
  /** Verifies the checkpoint files in `stagedDir` and installs them as checkpoint `name` of DATA_DIR `dataDir`. */
  checkpoint(dataDir: string, name: string, stagedDir: string, uploadId: string): Promise<void>;
}

/** Checkpoint names reserved by queued or running jobs (src/jobs/upload-reservations.ts). */
export interface OutputReservations {
  /** Holds `name` for the upload while `install` runs; a ConflictError if a job reserves it. */
  hold<T>(name: string, uploadId: string, install: () => Promise<T>): Promise<T>;
}

interface ReceivedFile {
  filename: string;
  path: string;
}

export class UploadService {
  constructor(
    private readonly layout: DataLayout,
    /** Unpacking limits; the upload size itself is enforced by the multipart parser (app.ts). */
    private readonly limits: ArchiveLimits,
    private readonly validator: UploadValidator,
    /** Without it, uploads ignore reservations (tests of the upload path alone). */
    private readonly reservations?: OutputReservations,
  ) {}

  /** Streams every part of a multipart request into `staging`; returns the `name` field and the files. */
  private async receive(parts: AsyncIterableIterator<Multipart>, staging: string): Promise<{ name: string; files: ReceivedFile[] }> {
    let name: string | undefined;
    const files: ReceivedFile[] = [];
    let count = 0;
    for await (const part of parts) {
      if (++count > MAX_PARTS) throw new ValidationError('too_many_parts', `An upload has at most ${MAX_PARTS} parts.`, null);
      if (part.type === 'file') {
        const dest = path.join(staging, `part-${files.length}`);
        await pipeline(part.file, createWriteStream(dest, { flags: 'wx' }));
        files.push({ filename: part.filename, path: dest });
      } else if (part.fieldname === 'name') {
        name = String(part.value);
      } else {
        throw new ValidationError('unknown_field', `Unknown form field \`${part.fieldname}\`; expected \`name\` and file parts.`, `/${part.fieldname}`);
      }
    }
    if (name === undefined) throw new ValidationError('missing_field', 'The form field `name` is required.', '/name');
    assertValidName(name, '/name');
    if (files.length === 0) throw new ValidationError('missing_file', 'Attach the data as a file part (a .zip or .tar.gz archive).', '/file');
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
      await extractArchive(archive, dest, this.limits);
    } catch (err) {
      // Point the client at the part to fix: the uploaded file.
      if (err instanceof GraftError && err.param === null) throw new GraftError(err.code, err.message, { param: '/file', statusCode: err.statusCode });
      throw err;
    }
    await fs.rm(archive, { force: true });
    await unwrapSingleFolder(dest);
  }

  async uploadDataset(parts: AsyncIterableIterator<Multipart>): Promise<DatasetDescription> {
    return this.withStaging('upload-dataset', async (staging) => {
      const { name, files } = await this.receive(parts, staging);
      if (files.length !== 1) throw new ValidationError('too_many_files', 'Upload a dataset as exactly one .zip or .tar.gz file.', '/file');
      if (await new DatasetCatalog(this.layout).exists(name)) throw new ConflictError('dataset_exists', `A dataset named "${name}" already exists.`, '/name');
      // Unpack as <staging>/datasets/<name>, so the catalog can describe it before it goes live.
      const root = path.join(staging, 'datasets', name);
      await this.unpack(files[0].path, root);
      const stagedLayout = new DataLayout(staging);
      await this.validator.dataset(staging, name);
      const description = await new DatasetCatalog(stagedLayout).describe(name);
      await renameNoReplace(root, this.layout.datasetDir(name, '/name'), 'dataset');
      return description;
    });
  }

  async uploadCheckpoint(parts: AsyncIterableIterator<Multipart>): Promise<CheckpointDescription> {
    return this.withStaging('upload-checkpoint', async (staging) => {
      const { name, files } = await this.receive(parts, staging);
      if (await new CheckpointCatalog(this.layout).exists(name)) throw new ConflictError('checkpoint_exists', `A checkpoint named "${name}" already exists.`, '/name');
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
      const uploadId = `upload-${randomUUID()}`;
      const install = () => this.validator.checkpoint(this.layout.root, name, dir, uploadId);
      await (this.reservations ? this.reservations.hold(name, uploadId, install) : install());
      return new CheckpointCatalog(this.layout).describe(name);
    });
  }
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

/**
 * Everything a training job will read must be readable now: IDX headers and sizes (and labels),
 * or every image of an image folder fully decoded.
 */
export async function validateDatasetFolder(layout: DataLayout, name: string): Promise<void> {
  const files = await locateDataset(layout, name);
  const dir = files.dir;
  if (files.format === 'idx') {
    await inspectIdx(files);
    return;
  }
  const all = [...files.train.flat(), ...(files.test ?? []).flat()];
  let next = 0;
  const worker = async () => {
    while (next < all.length) {
      const rel = all[next++];
      try {
        await sharp(path.join(dir, rel), { failOn: 'error' }).raw().toBuffer();
      } catch (err) {
        throw new UnprocessableError('dataset_invalid', `Dataset "${name}": ${rel} cannot be decoded as an image (${(err as Error).message}).`, '/file');
      }
    }
  };
  await Promise.all(Array.from({ length: DECODE_CONCURRENCY }, worker));
}
