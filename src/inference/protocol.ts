import type { SerializedGraftError } from '../untrusted/protocol';
import type { BackendPreference } from '../spec/backends';
import type { DatasetLimits } from '../storage/datasets';

/**
 * The contract between the API (src/inference/inference-client.ts) and its inference child
 * processes (workers/inference/main.ts). Messages cross a child_process IPC channel with
 * `serialization: 'advanced'` (structured clone), so typed arrays and buffers travel as bytes,
 * not as JSON number lists; error classes do not survive, so a child answers a GraftError's
 * fields and the API rebuilds it.
 */

/** What a prediction request carries: the JSON instances as parsed, or the bytes of image files. */
export type PredictInput =
  | { kind: 'arrays'; instances: (unknown[] | Float32Array)[] }
  | { kind: 'images'; images: { filename: string; bytes: Uint8Array }[] };

export interface PredictTask {
  /** The checkpoint's folder on the volume (resolved by the API: checkpoint-location.ts). */
  dir: string;
  /** Its name, for the response and for messages. */
  checkpoint: string;
  input: PredictInput;
  /** Classes listed per prediction (classifiers). */
  top: number;
  /** Return this layer's activations instead of the model's output. */
  layer?: string;
}

export interface LabelProbability {
  label: string;
  probability: number;
}

export interface Classification extends LabelProbability {
  top: LabelProbability[];
}

export type PredictOutput =
  | { checkpoint: string; predictions: Classification[] }
  | { checkpoint: string; outputs: number[][]; shape: number[] };

/** What one inference process has done: micro-batching is visible here (tests, /metrics). */
export interface InferenceStats {
  pid: number;
  backend: string | null;
  /** model.predict calls. */
  batches: number;
  /** Instances predicted. */
  instances: number;
  /** Batch size → how many batches had that size. */
  batchSizes: Record<string, number>;
  /** Models in the cache now. */
  models: number;
  /** Checkpoints loaded from the volume (cache misses). */
  loads: number;
  /** Models dropped (LRU or a deleted checkpoint). */
  evictions: number;
}

/** Fixed for the life of a child; passed as its one argument (JSON). */
export interface InferenceSettings {
  backend: BackendPreference;
  batchWindowMs: number;
  maxBatch: number;
  modelCache: number;
  imageLimits: DatasetLimits;
}

export type ToChild =
  | { id: number; op: 'predict'; task: PredictTask }
  | { id: number; op: 'evict'; dir: string }
  | { id: number; op: 'stats' };

export type FromChild = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: SerializedGraftError };
