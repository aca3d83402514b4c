import * as tf from '@tensorflow/tfjs';

/**
 * Training data lives off the accelerator and each batch becomes a tensor by copying its rows.
 * Measured on wasm: copying 64 rows of 512 floats into a new tensor takes 0.3 ms, while
 * tf.gather or tf.slice on an [8000, 512] tensor takes 2.5-13 ms, which would dominate a small
 * head's training step.
 *
 * A HostTensor only promises to produce rows on request: the rows may be in memory (features,
 * small data), in the on-volume sample cache (images, decoded to uint8 and scaled per batch), or
 * in a spilled feature file. So a job's memory holds a few batches, not its dataset.
 */
export interface HostTensor {
  /** shape[0] is the number of samples. */
  readonly shape: number[];
  /** Rows `idx` as float32, in a fresh buffer (the cpu backend keeps a reference to it). */
  read(idx: ArrayLike<number>): Promise<Float32Array>;
  /** Releases files it holds; idempotent. */
  close?(): Promise<void>;
}

export interface Split {
  x: HostTensor;
  /** Class indices for classification; null for reconstruction (the target is x itself). */
  labels: Int32Array | null;
  /** Reconstruction target when it is not `x` (after feature caching replaced x by features). */
  target?: HostTensor;
}

export function sampleSize(t: { shape: number[] }): number {
  return t.shape.slice(1).reduce((a, b) => a * b, 1);
}

export function count(t: { shape: number[] }): number {
  return t.shape[0];
}

/** Rows held in one Float32Array. */
export function memoryTensor(data: Float32Array, shape: number[]): HostTensor {
  const size = shape.slice(1).reduce((a, b) => a * b, 1);
  return {
    shape,
    read(idx) {
      const out = new Float32Array(idx.length * size);
      for (let k = 0; k < idx.length; k++) out.set(data.subarray(idx[k] * size, (idx[k] + 1) * size), k * size);
      return Promise.resolve(out);
    },
  };
}

/** Rows `idx` of `t` as a new tensor. */
export async function rows(t: HostTensor, idx: ArrayLike<number>): Promise<tf.Tensor> {
  return tf.tensor(await t.read(idx), [idx.length, ...t.shape.slice(1)]);
}

/** One-hot targets for `labels[idx]`, built on the host. */
export function oneHotRows(labels: Int32Array, idx: ArrayLike<number>, classes: number): tf.Tensor {
  const out = new Float32Array(idx.length * classes);
  for (let k = 0; k < idx.length; k++) out[k * classes + labels[idx[k]]] = 1;
  return tf.tensor2d(out, [idx.length, classes]);
}

export function sequence(start: number, n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => start + i);
}

export async function closeSplit(split: Split | null | undefined): Promise<void> {
  await split?.x.close?.();
  if (split?.target && split.target !== split.x) await split.target.close?.();
}

/** Input bytes one inference batch may take: 512 small samples, fewer large images (a 224×224×3 batch of 512 is 300 MB). */
const INFERENCE_BATCH_BYTES = 16 * 1024 * 1024;
const INFERENCE_BATCH_MAX = 512;

/** Batch size for inference (evaluation, feature extraction) over rows of `t`. */
export function inferenceBatch(t: { shape: number[] }): number {
  return Math.max(1, Math.min(INFERENCE_BATCH_MAX, Math.floor(INFERENCE_BATCH_BYTES / (sampleSize(t) * 4))));
}
