import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DEFAULT_TENANT } from '../auth/principal';

/**
 * Volumes written before tenants (issue 11) keep datasets and checkpoints at the root:
 *
 *   datasets/<name>/   checkpoints/<name>/   .meta/datasets/<name>.json
 *
 * They now belong to the default tenant, under tenants/default/. The move is made of renames on
 * one filesystem, so it is
 *  - atomic per folder: a reader sees each object at its old place or its new one, whole;
 *  - crash-safe: a crash between two renames leaves a volume the next start finishes migrating;
 *  - idempotent and safe to race: every process (API and workers) runs it at start; a rename
 *    whose source is gone (another process moved it) is simply skipped.
 * Nothing is ever deleted or overwritten: an object whose name is already taken in the default
 * tenant (possible only if someone wrote both layouts) is left where it was and reported.
 */
export interface MigrationReport {
  /** Relative paths moved, e.g. "datasets" or "checkpoints/mnist" (when merged one by one). */
  moved: string[];
  /** Relative paths left in place because the target name was taken. */
  conflicts: string[];
}

const LEGACY: readonly (readonly [from: string, to: string])[] = [
  ['datasets', path.join('tenants', DEFAULT_TENANT, 'datasets')],
  ['checkpoints', path.join('tenants', DEFAULT_TENANT, 'checkpoints')],
  [path.join('.meta', 'datasets'), path.join('tenants', DEFAULT_TENANT, '.meta', 'datasets')],
];

export async function migrateLegacyLayout(root: string): Promise<MigrationReport> {
  const report: MigrationReport = { moved: [], conflicts: [] };
  for (const [from, to] of LEGACY) await moveFolder(root, from, to, report);
  // The old .meta folder is empty once its datasets/ moved; leave it if anything else is in it.
  await fs.rmdir(path.join(root, '.meta')).catch(() => undefined);
  return report;
}

async function moveFolder(root: string, from: string, to: string, report: MigrationReport): Promise<void> {
  const src = path.join(root, from);
  const dst = path.join(root, to);
  if (!(await isDirectory(src))) return;
  await fs.mkdir(path.dirname(dst), { recursive: true });
  // The common case: one rename moves the whole folder (it also replaces an empty target folder).
  const whole = await tryRename(src, dst);
  if (whole === 'moved') {
    report.moved.push(from);
    return;
  }
  if (whole === 'gone') return;
  // The target exists and is not empty (a process created and filled it, or a crash during an
  // earlier merge): move entry by entry, never over an existing name.
  const entries = await fs.readdir(src).catch(() => [] as string[]);
  for (const entry of entries) {
    const target = path.join(dst, entry);
    if (await exists(target)) {
      report.conflicts.push(path.join(from, entry));
      continue;
    }
    const outcome = await tryRename(path.join(src, entry), target);
    if (outcome === 'moved') report.moved.push(path.join(from, entry));
    else if (outcome === 'taken') report.conflicts.push(path.join(from, entry));
  }
  // Removes the legacy folder only when nothing is left in it (rmdir refuses otherwise).
  await fs.rmdir(src).catch(() => undefined);
}

async function tryRename(src: string, dst: string): Promise<'moved' | 'gone' | 'taken'> {
  try {
    await fs.rename(src, dst);
    return 'moved';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'gone';
    if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') return 'taken';
    throw err;
  }
}

async function isDirectory(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isDirectory(), () => false);
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}
