import * as tf from '@tensorflow/tfjs';
import type { CheckpointManifest } from '../../src/storage/checkpoints';

/** A checkpoint and a dataset split, lined up: what evaluate and predict jobs both start from. */
export interface UseInputs {
  model: tf.LayersModel;
  manifest: CheckpointManifest | null;
  /** The checkpoint's class names (index = output unit); null for a model that is not a classifier. */
  labels: string[] | null;
  x: { data: Float32Array; shape: number[] };
  /** True class per sample as an index into `labels` (null without labels). */
  truth: Int32Array | null;
}

/** Probabilities of rows [start, start + n) as one host array (n × units). */
export function predictRows(model: tf.LayersModel, x: UseInputs['x'], start: number, n: number): { data: Float32Array; units: number } {
  const size = x.shape.slice(1).reduce((a, b) => a * b, 1);
  return tf.tidy(() => {
    const out = model.predict(tf.tensor(x.data.slice(start * size, (start + n) * size), [n, ...x.shape.slice(1)])) as tf.Tensor;
    return { data: out.dataSync() as Float32Array, units: out.shape[out.shape.length - 1] ?? 1 };
  });
}
