import type { SerializedGraftError } from '../untrusted/protocol';
import type { BackendPreference } from '../spec/backends';
import type { DatasetLimits } from '../storage/datasets';

/**
 * The contract between the API (src/inference/inference-client.ts) and its inference child
 * processes (workers/inference/main.ts). Messages cross a child_process IPC channel with
 * `serialization: 'advanced'` (structured clone), so typed arrays and buffers travel as bytes,
 * not as JSON number lists; error classes do not survive, so a child answers a GraftError's
 * fields and the API rebuilds it. Each side sends an array of messages: everything one turn of its
 * event loop produced goes as one IPC write (under load, 32 requests cost one write and one
 * wake-up instead of 32).
 */

/**
 * Instances the API already packed as float32 (JSON arrays of finite numbers, or a binary body):
 * `count` instances back to back (null: as many as the floats hold), each of shape `dims` as the
 * request nested it (null: flat, e.g. a raw float32 body). The inference process checks them
 * against the model's input. Requests of this kind for one model are coalesced by the API into
 * one `rows` message per turn of its event loop.
 */
export interface RowsInput {
  kind: 'rows';
  x: Float32Array;
  count: number | null;
  dims: number[] | null;
  /** With `count` null: the most instances the request may hold (PREDICT_MAX_INSTANCES; more is 413). */
  maxCount?: number;
}

/** What a prediction request carries: packed rows, the JSON instances as parsed (anything the API could not pack), or the bytes of image files. */
export type PredictInput =
  | RowsInput
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

/** One request's share of a `rows` message: `length` floats of the message's `x` from `offset`. */
export interface RowsPart extends Omit<RowsInput, 'kind' | 'x'> {
  offset: number;
  length: number;
}

/** Several requests' packed instances for one model (and layer), predicted together. */
export interface RowsTask {
  dir: string;
  checkpoint: string;
  layer?: string;
  x: Float32Array;
  parts: RowsPart[];
  /**
   * Other predictions the API holds in flight besides these parts: concurrent clients exist, so
   * the inference process waits its batching window for them even when it holds nothing else.
   */
  othersInFlight: number;
}

/**
 * The answer to a `rows` message: the outputs of every accepted part, back to back in part order
 * (`rowSize` floats per instance), and each part's instance count or its error. The API turns
 * them into responses (classification with `labels`, or raw outputs).
 */
export interface RowsResult {
  output: Float32Array;
  rowSize: number;
  shape: number[];
  /** Class names when the model is a classifier and no `layer` was asked for. */
  labels: string[] | null;
  parts: ({ ok: true; count: number } | { ok: false; error: SerializedGraftError })[];
}

export type ToChild =
  | { id: number; op: 'predict'; task: PredictTask }
  | { id: number; op: 'rows'; task: RowsTask }
  | { id: number; op: 'evict'; dir: string }
  | { id: number; op: 'stats' };

export type FromChild = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: SerializedGraftError };
