import { captureGraftError, type ImportCheckpointTask, type PlanTask, type TaskOutcome, type ValidateDatasetTask } from '../../src/untrusted/protocol';
import type { JobPlan } from '../../src/spec/plan';
import { CheckpointCatalog, checkpointNotFound } from '../../src/storage/checkpoints';
import { isGraftError } from '../../src/errors';
import { DataLayout } from '../../src/storage/layout';
import { validateDatasetFolder } from '../../src/storage/datasets';
import { importCheckpoint as installCheckpoint } from '../engine/checkpoint-io';
import { ensureCpuBackend } from '../engine/cpu';
import { planJob } from '../engine/plan';

/**
 * The untrusted-work tasks the API hands to its thread pool (src/api/untrusted-pool.ts; the
 * contract is src/untrusted/protocol.ts). Each runs in a piscina worker thread with a heap limit
 * and is aborted (thread terminated and replaced) past its time limit, so a hostile network or
 * file can cost that thread, never the API's event loop. TensorFlow.js runs here on the pure-JS
 * cpu backend: planning and verifying compute nothing heavy, and it loads nothing native.
 */

export async function plan(task: PlanTask): Promise<TaskOutcome<JobPlan>> {
  return captureGraftError(async () => {
    const layout = new DataLayout(task.dataDir, task.tenant);
    return planJob(task.spec, {
      datasetShape: task.dataset.inputShape as [number, number, number] | null,
      numClasses: task.dataset.numClasses,
      budget: task.budget,
      loadSource: async (ref) => {
        const source = await sourceStructure(layout, ref);
        return { modelTopology: source.modelTopology, weights: new Map(source.weights.map((w) => [w.name, { shape: w.shape, dtype: 'float32' }])) };
      },
    });
  });
}

/**
 * Topology and weight shapes of source checkpoint `ref` as seen from `layout`'s tenant. Another
 * tenant's name fails exactly as a missing name does (same code and message).
 */
async function sourceStructure(layout: DataLayout, ref: string) {
  const target = layout.resolveRef(ref);
  if (!target) throw checkpointNotFound(ref);
  return new CheckpointCatalog(target.layout).structure(target.name).catch((err: unknown) => {
    throw isGraftError(err) && err.code === 'checkpoint_not_found' ? checkpointNotFound(ref) : err;
  });
}

export async function validateDataset(task: ValidateDatasetTask): Promise<TaskOutcome<null>> {
  return captureGraftError(async () => {
    await validateDatasetFolder(task.stagingRoot, task.name, task.limits);
    return null;
  });
}

export async function importCheckpoint(task: ImportCheckpointTask): Promise<TaskOutcome<null>> {
  return captureGraftError(async () => {
    await ensureCpuBackend();
    await installCheckpoint(new DataLayout(task.dataDir, task.tenant), task.name, task.stagedDir, task.uploadId);
    return null;
  });
}

export async function warmup(): Promise<TaskOutcome<null>> {
  await ensureCpuBackend();
  return { ok: true, value: null };
}
