import * as tf from '@tensorflow/tfjs';
import { ensureCpuBackend } from '../../workers/engine/cpu';
import { evaluate } from '../../workers/engine/evaluate';
import { memoryTensor } from '../../workers/engine/host-data';

/**
 * The confusion matrix grows with classes²: evaluation keeps it only up to
 * CONFUSION_MATRIX_MAX_CLASSES classes, and reports per-class accuracy either way.
 */
describe('evaluate: confusion-matrix cap', () => {
  const classes = 6;
  // An identity "model": the prediction is the one-hot input, so accuracy is known exactly.
  let model: tf.LayersModel;
  const labels = Int32Array.from([0, 1, 2, 3, 4, 5, 0, 1]);
  const predicted = [0, 1, 2, 3, 4, 5, 1, 1]; // sample 6 (class 0) is wrong
  const x = memoryTensor(Float32Array.from(predicted.flatMap((p) => Array.from({ length: classes }, (_, c) => (c === p ? 10 : 0)))), [labels.length, classes]);
  const lossFn = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred) as tf.Scalar;

  beforeAll(async () => {
    await ensureCpuBackend();
    const input = tf.input({ shape: [classes] });
    model = tf.model({ inputs: input, outputs: tf.layers.activation({ activation: 'linear' }).apply(input) as tf.SymbolicTensor });
  });

  const run = (maxConfusionClasses: number) => evaluate(model, { x, labels }, { lossFn, batchSize: 3, classes, withConfusion: true, maxConfusionClasses });

  it('keeps the matrix up to the cap', async () => {
    const m = await run(classes);
    expect(m.confusionMatrix).toHaveLength(classes);
    expect(m.confusionMatrix![0]).toEqual([1, 1, 0, 0, 0, 0]);
    expect(m.accuracy).toBeCloseTo(7 / 8);
    expect(m.perClassAccuracy).toMatchObject({ '0': 0.5, '1': 1, '5': 1 });
  });

  it('above the cap: matrix null, per-class accuracy still reported', async () => {
    const m = await run(classes - 1);
    expect(m.confusionMatrix).toBeNull();
    expect(m.accuracy).toBeCloseTo(7 / 8);
    expect(m.perClassAccuracy).toEqual({ '0': 0.5, '1': 1, '2': 1, '3': 1, '4': 1, '5': 1 });
  });
});
