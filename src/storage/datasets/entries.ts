import { promises as fs, type Dirent } from 'node:fs';

/** A folder's entries without hidden ones (.DS_Store, editor swap files): those are never data. */
export async function visibleEntries(dir: string): Promise<Dirent[]> {
  return (await fs.readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.'));
}
