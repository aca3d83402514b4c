import * as tf from '@tensorflow/tfjs';
import type { CheckpointManifest } from '../../src/storage/checkpoints';
import type { HostTensor } from './host-data';

/** A checkpoint and a dataset split, lined up: what evaluate and predict jobs both start from. */
export interface UseInputs {
  model: tf.LayersModel;
  manifest: CheckpointManifest | null;
  /** The checkpoint's class names (index = output unit); null for a model that is not a classifier. */
  labels: string[] | null;
  /** The split's samples, preprocessed as the checkpoint's manifest records (read a batch at a time). */
  x: HostTensor;
  /** True class per sample as an index into `labels` (null without labels). */
  truth: Int32Array | null;
}

/** Probabilities of rows [start, start + n) as one host array (n × units). */
export async function predictRows(model: tf.LayersModel, x: HostTensor, start: number, n: number): Promise<{ data: Float32Array; units: number }> {
  const rows = await x.read(Int32Array.from({ length: n }, (_, i) => start + i));
  // The tensor leaves tidy, not its data: tidy walks a returned Float32Array element by element.
  const out = tf.tidy(() => model.predict(tf.tensor(rows, [n, ...x.shape.slice(1)])) as tf.Tensor);
  try {
    return { data: out.dataSync() as Float32Array, units: out.shape[out.shape.length - 1] ?? 1 };
  } finally {
    out.dispose();
  }
}
