import { promises as fs } from 'node:fs';

/**
 * Remembers a value derived from files on the volume for as long as one file's identity (inode,
 * size, modification time) is unchanged. Checkpoints are immutable once written and datasets are
 * replaced by renaming a new folder into place, so a stat per use is enough to notice any change,
 * and far cheaper than re-reading and re-parsing a model.json on every submission.
 * Bounded: the least recently used entry goes first.
 */
export const FILE_MEMO_ENTRIES = 512;
/**
 * How long a file's identity is trusted without a new stat: a burst of submissions stats each
 * file once per window instead of once per request. A checkpoint replaced within the window is
 * still caught where it matters: the worker re-reads and verifies everything it trains from.
 */
export const FILE_RECHECK_MS = 500;

interface Entry<T> {
  stamp: string;
  checkedAt: number;
  value: T;
}

/** The identity of a file (inode, size, mtime), or 'absent'. */
export async function fileStamp(file: string): Promise<string> {
  const stat = await fs.stat(file).catch(() => null);
  return stat ? `${stat.ino}:${stat.size}:${stat.mtimeMs}` : 'absent';
}

export class FileMemo<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly maxEntries = FILE_MEMO_ENTRIES,
    private readonly recheckMs = FILE_RECHECK_MS,
  ) {}

  /** The value for `key`, recomputed when `file` is not the file it was computed from. */
  async get(key: string, file: string, compute: (stamp: string) => Promise<T>): Promise<T> {
    const known = this.entries.get(key);
    const now = Date.now();
    // A file seen absent is looked for again at once: an upload followed by a submission must see it.
    if (known && known.stamp !== 'absent' && now - known.checkedAt < this.recheckMs) return known.value;
    const stamp = await fileStamp(file);
    if (known && known.stamp === stamp) {
      known.checkedAt = now;
      this.entries.delete(key);
      this.entries.set(key, known);
      return known.value;
    }
    const value = await compute(stamp);
    this.entries.delete(key);
    this.entries.set(key, { stamp, checkedAt: now, value });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return value;
  }
}
