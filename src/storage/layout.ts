import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ConflictError } from '../errors';
import { assertValidName, resolveInside } from './names';

/**
 * The volume layout. Everything graft stores lives under one root so that
 * api and workers on different hosts only need to share this folder.
 *
 *   datasets/<name>/      checkpoints/<name>/      .tmp/<random>/ (staging for atomic writes)
 */
export class DataLayout {
  readonly root: string;
  readonly datasetsDir: string;
  readonly checkpointsDir: string;
  readonly tmpDir: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.datasetsDir = path.join(this.root, 'datasets');
    this.checkpointsDir = path.join(this.root, 'checkpoints');
    this.tmpDir = path.join(this.root, '.tmp');
  }

  async ensure(): Promise<void> {
    await Promise.all([this.datasetsDir, this.checkpointsDir, this.tmpDir].map((d) => fs.mkdir(d, { recursive: true })));
  }

  datasetDir(name: string, param = '/dataset/name'): string {
    return resolveInside(this.datasetsDir, assertValidName(name, param));
  }

  checkpointDir(name: string, param = '/output/checkpoint'): string {
    return resolveInside(this.checkpointsDir, assertValidName(name, param));
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
