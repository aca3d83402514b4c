import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { DataLayout } from '../storage/layout';
import type { JobResult } from './types';

/** What a job's own output manifest tells about the attempt that wrote it. */
export interface OwnOutput {
  backend?: string;
  metrics?: JobResult['metrics'];
}

/**
 * The output checkpoint `name` (of the tenant `layout` is the view of), if job `jobId` wrote it: its manifest names the job as author.
 * Uploads write manifests with their own ids and `jobType: "upload"`, so an uploaded manifest
 * can never pass for a job's output.
 */
export async function readOwnOutput(layout: DataLayout, name: string, jobId: string): Promise<OwnOutput | null> {
  try {
    const manifest = JSON.parse(await fs.readFile(path.join(layout.checkpointDir(name), 'manifest.json'), 'utf8')) as OwnOutput & { jobId?: string; jobType?: string };
    return manifest.jobId === jobId && manifest.jobType !== 'upload' ? manifest : null;
  } catch {
    return null;
  }
}
