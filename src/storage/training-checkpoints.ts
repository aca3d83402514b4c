import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { DataLayout } from './layout';
import { resolveInside } from './names';

/**
 * Where a job's training checkpoints live (DATA_DIR/jobs/<id>/checkpoints/e<epoch>-b<batch>/) and
 * how the API lists them without loading TensorFlow: each folder's state.json says its position
 * and the metrics of the last finished epoch.
 */
export const TRAINING_CHECKPOINT_DIR = /^e(\d{6})-b(\d{6})$/;
export const TRAINING_STATE_FILE = 'state.json';

export function trainingCheckpointsDir(layout: DataLayout, jobId: string): string {
  return resolveInside(layout.root, 'jobs', jobId.replace(/[^A-Za-z0-9-]/g, '_'), 'checkpoints');
}

export function trainingCheckpointName(epoch: number, batch: number): string {
  return `e${String(epoch).padStart(6, '0')}-b${String(batch).padStart(6, '0')}`;
}

export interface TrainingCheckpointInfo {
  /** The epoch the checkpoint resumes (1-based) and the batches of it already done. */
  epoch: number;
  batch: number;
  createdAt: string;
  /** The last finished epoch: loss, accuracy, valLoss, valAccuracy... (null before the first). */
  metrics: Record<string, number | null> | null;
}

/** Checkpoint folder names, oldest first. */
export async function trainingCheckpointFolders(dir: string): Promise<string[]> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => TRAINING_CHECKPOINT_DIR.test(n)).sort();
}

export async function listTrainingCheckpoints(layout: DataLayout, jobId: string): Promise<TrainingCheckpointInfo[]> {
  const dir = trainingCheckpointsDir(layout, jobId);
  const out: TrainingCheckpointInfo[] = [];
  for (const name of await trainingCheckpointFolders(dir)) {
    try {
      const state = JSON.parse(await fs.readFile(path.join(dir, name, TRAINING_STATE_FILE), 'utf8')) as {
        createdAt: string;
        position: { epoch: number; batch: number; history: Record<string, number | null>[] };
      };
      out.push({ epoch: state.position.epoch, batch: state.position.batch, createdAt: state.createdAt, metrics: state.position.history[state.position.history.length - 1] ?? null });
    } catch {
      // A folder being written or damaged: not listed.
    }
  }
  return out;
}

/** A job's own folder, DATA_DIR/jobs/<id>/ (its training checkpoints); deleted when its record expires. */
export function jobDir(layout: DataLayout, jobId: string): string {
  return path.dirname(trainingCheckpointsDir(layout, jobId));
}
