import path from 'node:path';
import type { DataLayout } from './layout';
import { jobDir } from './training-checkpoints';

/** A predict job's JSONL file, DATA_DIR/jobs/<id>/output.jsonl: written by the worker, streamed by GET /v1/jobs/{id}/output, removed with the job's folder. */
export function jobOutputFile(layout: DataLayout, jobId: string): string {
  return path.join(jobDir(layout, jobId), 'output.jsonl');
}
