import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { DataLayout } from '../layout';
import { resolveInside } from '../names';
import type { DatasetContent } from './types';

/**
 * Describing a dataset reads headers, label files and listings; listing datasets and submitting
 * jobs must not pay that every time. The description is computed once and stored as
 * DATA_DIR/tenants/<tenant>/.meta/datasets/<name>.json with a fingerprint of the folder, and reused while the
 * fingerprint still matches.
 *
 * The fingerprint is cheap to check: inode + mtime (+ size) of every folder of the dataset and of
 * every file at its top. Adding, removing or renaming anything changes its folder's mtime, and
 * top-level files (IDX) are compared by size and mtime too. A file deeper down rewritten in place
 * under the same name (an image replaced inside a class folder) is not noticed: datasets are
 * meant to be uploaded whole, not edited; re-upload or touch the folder after such an edit.
 */
/** 2: descriptions carry classBalance and warnings (issue 13); older ones are recomputed. */
const FORMAT_VERSION = 2;

/** Relative path → "inode:mtimeMs:size". */
export type Fingerprint = Record<string, string>;

export interface FolderInfo {
  sizeBytes: number;
  createdAt: string;
}

/** What is stored: either the content or the error that made the dataset unusable, plus folder facts. */
export interface StoredDescription {
  folder: FolderInfo;
  content?: DatasetContent;
  error?: { code: string; message: string; param: string | null; details?: unknown };
}

interface StoredFile extends StoredDescription {
  version: number;
  fingerprint: Fingerprint;
}

export class DescriptionStore {
  private readonly dir: string;

  constructor(private readonly layout: DataLayout) {
    this.dir = layout.datasetMetaDir;
  }

  /** The stored description of the dataset in `datasetDir`, or null if there is none or the folder changed since. */
  async read(name: string, datasetDir: string): Promise<StoredDescription | null> {
    const stored = await fs.readFile(this.file(name), 'utf8').then((s) => JSON.parse(s) as StoredFile).catch(() => null);
    if (stored?.version !== FORMAT_VERSION || !(await stillMatches(datasetDir, stored.fingerprint))) return null;
    return { folder: stored.folder, content: stored.content, error: stored.error };
  }

  /**
   * Computes and stores a description. The fingerprint is taken first: a change made while
   * `compute` reads the folder leaves a fingerprint that no longer matches, so it is redone next time.
   */
  async compute(name: string, datasetDir: string, compute: () => Promise<StoredDescription>): Promise<StoredDescription> {
    const fingerprint = await fingerprintOf(datasetDir);
    const value = await compute();
    await this.write(name, { version: FORMAT_VERSION, fingerprint, ...value });
    return value;
  }

  /** Stores a description computed elsewhere (in an upload's staging folder) for the folder as it is now. */
  async remember(name: string, datasetDir: string, value: StoredDescription): Promise<void> {
    await this.write(name, { version: FORMAT_VERSION, fingerprint: await fingerprintOf(datasetDir), ...value });
  }

  async remove(name: string): Promise<void> {
    await fs.rm(this.file(name), { force: true });
  }

  private file(name: string): string {
    return resolveInside(this.dir, `${name}.json`);
  }

  /** Written to .tmp and renamed: a reader sees the old file or the new one, never half of one. */
  private async write(name: string, stored: StoredFile): Promise<void> {
    await Promise.all([fs.mkdir(this.dir, { recursive: true }), fs.mkdir(this.layout.tmpDir, { recursive: true })]);
    const tmp = path.join(this.layout.tmpDir, `meta-${name}-${randomUUID()}.json`);
    try {
      await fs.writeFile(tmp, JSON.stringify(stored));
      await fs.rename(tmp, this.file(name));
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }
}

const statKey = (s: { ino: number; mtimeMs: number; size: number }, isDir: boolean) => `${s.ino}:${s.mtimeMs}:${isDir ? 0 : s.size}`;

/** Every folder of the dataset (its own included, as '.') and every file at its top. */
export async function fingerprintOf(datasetDir: string): Promise<Fingerprint> {
  const entries = await fs.readdir(datasetDir, { recursive: true, withFileTypes: true });
  const watched = entries
    .filter((e) => e.isDirectory() || (e.isFile() && e.parentPath === datasetDir))
    .map((e) => ({ rel: path.relative(datasetDir, path.join(e.parentPath, e.name)), isDir: e.isDirectory() }));
  watched.push({ rel: '.', isDir: true });
  const keys = await Promise.all(watched.map(async ({ rel, isDir }) => [rel, statKey(await fs.stat(path.join(datasetDir, rel)), isDir)] as const));
  return Object.fromEntries(keys);
}

async function stillMatches(datasetDir: string, fingerprint: Fingerprint): Promise<boolean> {
  const checks = await Promise.all(
    Object.entries(fingerprint).map(async ([rel, key]) => {
      const stat = await fs.stat(resolveInside(datasetDir, rel)).catch(() => null);
      return stat !== null && statKey(stat, stat.isDirectory()) === key;
    }),
  );
  return checks.every(Boolean);
}
