import { GraftError, type ErrorBody } from '../errors';
import type { JobPlan } from '../spec/plan';
import type { JobSpec } from '../spec/schema';
import type { DatasetLimits } from '../storage/datasets';

/**
 * The contract between the API and its pool of untrusted-work threads (src/api/untrusted-pool.ts
 * runs them, workers/untrusted/tasks.ts implements them). Everything that builds a user network
 * or decodes user files for the API goes through one of these tasks, so the API process itself
 * never imports TensorFlow.js and its event loop only does I/O and bounded checks.
 *
 * Values cross a thread boundary by structured clone, which drops error classes: a task answers
 * `{ ok: false, error }` with the GraftError's fields and the API rebuilds the error.
 */
export interface ModelBudget {
  /** Largest parameter count a network may have (MODEL_MAX_PARAMS). */
  maxParams: number;
  /** Largest activation memory of one sample through the network, in bytes (MODEL_MAX_ACTIVATION_BYTES). */
  maxActivationBytes: number;
}

export interface PlanTask {
  dataDir: string;
  /** The tenant the spec's names are relative to (`public/<name>` reads the shared namespace). */
  tenant: string;
  spec: JobSpec;
  dataset: { inputShape: number[] | null; numClasses: number };
  budget: ModelBudget;
}

export interface ValidateDatasetTask {
  /** A DATA_DIR-shaped staging root holding the dataset at `new DataLayout(stagingRoot).datasetDir(name)`. */
  stagingRoot: string;
  name: string;
  limits: DatasetLimits;
}

export interface ImportCheckpointTask {
  dataDir: string;
  /** The tenant the checkpoint is installed for. */
  tenant: string;
  name: string;
  stagedDir: string;
  uploadId: string;
}

/** Task name → [input, output]. */
export interface UntrustedTasks {
  plan: [PlanTask, JobPlan];
  validateDataset: [ValidateDatasetTask, null];
  importCheckpoint: [ImportCheckpointTask, null];
  /** Loads the task module's dependencies so the first real task does not pay for it. */
  warmup: [null, null];
}

export type TaskName = keyof UntrustedTasks;

export interface SerializedGraftError extends ErrorBody {
  statusCode: number;
  details?: unknown;
}

export type TaskOutcome<T> = { ok: true; value: T } | { ok: false; error: SerializedGraftError };

/** Runs `fn`, turning a GraftError into a value that survives structured clone; anything else is a bug and rethrows. */
export async function captureGraftError<T>(fn: () => Promise<T>): Promise<TaskOutcome<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    if (err instanceof GraftError) return { ok: false, error: serializeGraftError(err) };
    throw err;
  }
}

/** A GraftError's fields, which survive structured clone (the class does not). */
export function serializeGraftError(err: GraftError): SerializedGraftError {
  return { code: err.code, message: err.message, param: err.param, statusCode: err.statusCode, details: err.details };
}

export function rebuildGraftError(e: SerializedGraftError): GraftError {
  return new GraftError(e.code, e.message, { param: e.param, statusCode: e.statusCode, details: e.details });
}
