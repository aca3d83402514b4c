import { promises as fs } from 'node:fs';

/**
 * Remembers a value derived from files on the volume for as long as one file's identity (inode,
 * size, modification time) is unchanged. Checkpoints are immutable once written and datasets are
 * replaced by renaming a new folder into place, so a stat per use is enough to notice any change,
 * and far cheaper than re-reading and re-parsing a model.json on every submission.
 * Bounded: the least recently used entry goes first.
 */
export const FILE_MEMO_ENTRIES = 512;

interface Entry<T> {
  stamp: string;
  value: T;
}

export class FileMemo<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(private readonly maxEntries = FILE_MEMO_ENTRIES) {}

  /** The value for `key`, recomputed when `file` is not the file it was computed from. */
  async get(key: string, file: string, compute: () => Promise<T>): Promise<T> {
    const stat = await fs.stat(file).catch(() => null);
    const stamp = stat ? `${stat.ino}:${stat.size}:${stat.mtimeMs}` : 'absent';
    const known = this.entries.get(key);
    if (known && known.stamp === stamp) {
      this.entries.delete(key);
      this.entries.set(key, known);
      return known.value;
    }
    const value = await compute();
    this.entries.delete(key);
    this.entries.set(key, { stamp, value });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return value;
  }
}
