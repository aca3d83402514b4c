import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { DataLayout } from '../storage/layout';
import { jobDir } from '../storage/training-checkpoints';
import type { JobStore } from './job-store';

/**
 * What finished jobs and crashes leave behind, removed on a schedule (the worker runs it at start
 * and every RECONCILE_INTERVAL_SECONDS):
 *  - a job whose record expired: its folder DATA_DIR/jobs/<id>/ (training checkpoints), then every
 *    key still naming it (index entries, journal, expiry entry — forget.lua), read from the expiry
 *    index by score, so nothing waits for a listing to stumble on it;
 *  - DATA_DIR/.tmp/ entries nothing has written to for `tmpGraceSeconds` (staging folders of a
 *    process that crashed mid-write; a live writer keeps touching its folder, so it is spared).
 */
export interface RetentionOptions {
  store: JobStore;
  layout: DataLayout;
  logger: Logger;
  tmpGraceSeconds: number;
}

const BATCH = 500;

export class RetentionSweeper {
  constructor(private readonly opts: RetentionOptions) {}

  async sweep(): Promise<{ jobs: number; tmp: number }> {
    return { jobs: await this.sweepExpiredJobs(), tmp: await this.sweepTmp() };
  }

  async sweepExpiredJobs(): Promise<number> {
    const { store, layout } = this.opts;
    let forgotten = 0;
    for (;;) {
      const expired = await store.expiredBy(await store.now(), BATCH);
      let progressed = false;
      for (const job of expired) {
        if (await store.get(job.id)) continue; // not expired after all (the clock of a TTL is Redis's too)
        await fs.rm(jobDir(layout, job.id), { recursive: true, force: true });
        if (await store.forget(job)) {
          forgotten++;
          progressed = true;
        }
      }
      if (expired.length < BATCH || !progressed) break;
    }
    if (forgotten) this.opts.logger.info({ forgotten }, 'removed expired jobs');
    return forgotten;
  }

  async sweepTmp(): Promise<number> {
    const dir = this.opts.layout.tmpDir;
    const cutoff = Date.now() - this.opts.tmpGraceSeconds * 1000;
    let removed = 0;
    for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
      const entry = path.join(dir, name);
      const newest = await newestMtime(entry);
      if (newest !== null && newest < cutoff) {
        await fs.rm(entry, { recursive: true, force: true });
        removed++;
      }
    }
    if (removed) this.opts.logger.info({ removed }, 'removed abandoned staging folders');
    return removed;
  }
}

/** The latest modification time of a file or anything in a folder (null if it vanished meanwhile). */
async function newestMtime(entry: string): Promise<number | null> {
  const stat = await fs.lstat(entry).catch(() => null);
  if (!stat) return null;
  let newest = stat.mtimeMs;
  if (stat.isDirectory()) {
    for (const child of await fs.readdir(entry).catch(() => [] as string[])) {
      const t = await newestMtime(path.join(entry, child));
      if (t !== null && t > newest) newest = t;
    }
  }
  return newest;
}
