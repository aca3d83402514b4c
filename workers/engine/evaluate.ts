import * as tf from '@tensorflow/tfjs';
import { count, oneHotRows, rows, sequence, type Split } from './host-data';
import type { LossFn } from './losses';

export interface Metrics {
  loss: number;
  accuracy: number | null;
  /** Class name → accuracy over that class's samples; null without samples. */
  perClassAccuracy?: Record<string, number | null>;
  /** confusionMatrix[true][predicted] counts; null above `maxConfusionClasses` classes. */
  confusionMatrix?: number[][] | null;
  samples: number;
}

/** Default of CONFUSION_MATRIX_MAX_CLASSES (src/config.ts): a matrix grows with classes². */
export const DEFAULT_CONFUSION_MAX_CLASSES = 100;

/**
 * Loss and accuracy in inference mode, batch by batch (bounded memory), with per-class accuracy
 * and, up to `maxConfusionClasses` classes, a confusion matrix for classification (`classes` > 0).
 */
export async function evaluate(
  model: tf.LayersModel,
  split: Split,
  opts: { lossFn: LossFn; batchSize: number; classes: number; withConfusion: boolean; classNames?: string[]; maxConfusionClasses?: number },
): Promise<Metrics> {
  const n = count(split.x);
  const classification = split.labels !== null;
  const keepMatrix = opts.classes <= (opts.maxConfusionClasses ?? DEFAULT_CONFUSION_MAX_CLASSES);
  // Per-class counts are O(classes) and always kept; the matrix only when small enough.
  const perClassTotal = new Array<number>(opts.classes).fill(0);
  const perClassCorrect = new Array<number>(opts.classes).fill(0);
  const confusion = keepMatrix ? Array.from({ length: opts.classes }, () => new Array<number>(opts.classes).fill(0)) : null;
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < n; start += opts.batchSize) {
    const size = Math.min(opts.batchSize, n - start);
    const idx = sequence(start, size);
    const xb = await rows(split.x, idx);
    const yb = classification ? oneHotRows(split.labels!, idx, opts.classes) : await rows(split.target ?? split.x, idx);
    const [lossT, predT] = tf.tidy(() => {
      const pred = model.predict(xb) as tf.Tensor;
      return [opts.lossFn(yb, pred), classification ? tf.argMax(pred, -1) : tf.tensor1d([], 'int32')];
    });
    tf.dispose([xb, yb]);
    const [loss, pred] = await Promise.all([lossT.data(), predT.data()]);
    tf.dispose([lossT, predT]);
    lossSum += loss[0] * size;
    for (let i = 0; i < pred.length; i++) {
      const truth = split.labels![start + i];
      if (confusion) confusion[truth][pred[i]]++;
      perClassTotal[truth]++;
      if (truth === pred[i]) {
        correct++;
        perClassCorrect[truth]++;
      }
    }
  }
  const metrics: Metrics = { loss: lossSum / n, accuracy: classification ? correct / n : null, samples: n };
  if (classification && opts.withConfusion) {
    metrics.confusionMatrix = confusion;
    metrics.perClassAccuracy = Object.fromEntries(
      perClassTotal.map((total, c) => [opts.classNames?.[c] ?? String(c), total > 0 ? perClassCorrect[c] / total : null]),
    );
  }
  return metrics;
}
