import * as tf from '@tensorflow/tfjs';
import type { LossFn } from './losses';
import type { Task } from './model';

export interface Metrics {
  loss: number;
  accuracy: number | null;
  /** Class index (or name, once labelled) → accuracy over that class's samples; null without samples. */
  perClassAccuracy?: Record<string, number | null>;
  /** confusionMatrix[true][predicted] counts. */
  confusionMatrix?: number[][];
  samples: number;
}

/**
 * Loss and accuracy in inference mode, batch by batch (bounded memory), with per-class accuracy
 * and a confusion matrix for classification.
 */
export async function evaluate(
  model: tf.LayersModel,
  x: tf.Tensor,
  y: tf.Tensor,
  task: Task,
  opts: { lossFn: LossFn; batchSize: number; withConfusion: boolean; classNames?: string[] },
): Promise<Metrics> {
  const n = x.shape[0];
  const classes = task === 'classification' ? y.shape[1]! : 0;
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < n; start += opts.batchSize) {
    const size = Math.min(opts.batchSize, n - start);
    const [lossT, truthT, predT] = tf.tidy(() => {
      const xb = x.slice(start, size);
      const yb = y.slice(start, size);
      const pred = model.predict(xb) as tf.Tensor;
      const loss = opts.lossFn(yb, pred);
      return task === 'classification' ? [loss, tf.argMax(yb, -1), tf.argMax(pred, -1)] : [loss, tf.tensor1d([], 'int32'), tf.tensor1d([], 'int32')];
    });
    const [loss, truth, pred] = await Promise.all([lossT.data(), truthT.data(), predT.data()]);
    tf.dispose([lossT, truthT, predT]);
    lossSum += loss[0] * size;
    for (let i = 0; i < truth.length; i++) {
      confusion[truth[i]][pred[i]]++;
      if (truth[i] === pred[i]) correct++;
    }
  }
  const metrics: Metrics = { loss: lossSum / n, accuracy: task === 'classification' ? correct / n : null, samples: n };
  if (task === 'classification' && opts.withConfusion) {
    metrics.confusionMatrix = confusion;
    metrics.perClassAccuracy = Object.fromEntries(
      confusion.map((row, c) => {
        const total = row.reduce((a, b) => a + b, 0);
        return [opts.classNames?.[c] ?? String(c), total > 0 ? row[c] / total : null];
      }),
    );
  }
  return metrics;
}
