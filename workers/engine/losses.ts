import * as tf from '@tensorflow/tfjs';
import type { Task } from './model';

/** Keras' clipping constant: keeps log() finite for saturated probabilities. */
const EPSILON = 1e-7;

export type LossFn = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Scalar;

/**
 * The activation the network's output has been through. A layer of class Softmax carries no
 * `activation` in its config but is one (Keras `layers.Softmax()`); treating it as linear would
 * apply softmax a second time inside the loss.
 */
export function finalActivation(model: tf.LayersModel): string {
  const last = model.layers[model.layers.length - 1];
  if (last.getClassName() === 'Softmax') return 'softmax';
  return String((last.getConfig() as { activation?: string }).activation ?? 'linear');
}

/**
 * The loss follows the task and the network's last activation, as Keras users expect:
 * softmax → categorical cross-entropy, linear logits → softmax cross-entropy,
 * sigmoid reconstruction → binary cross-entropy, anything else → mean squared error.
 */
export function lossFor(model: tf.LayersModel, task: Task): { fn: LossFn; name: string } {
  const activation = finalActivation(model);
  if (task === 'classification') {
    if (activation === 'softmax') {
      return {
        name: 'categoricalCrossentropy',
        fn: (y, p) => tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(y, tf.log(tf.clipByValue(p, EPSILON, 1 - EPSILON))), -1)))) as tf.Scalar,
      };
    }
    return { name: 'softmaxCrossEntropy', fn: (y, p) => tf.losses.softmaxCrossEntropy(y, p) as tf.Scalar };
  }
  if (activation === 'sigmoid') {
    return {
      name: 'binaryCrossentropy',
      fn: (y, p) =>
        tf.tidy(() => {
          const c = tf.clipByValue(p, EPSILON, 1 - EPSILON);
          return tf.neg(tf.mean(tf.add(tf.mul(y, tf.log(c)), tf.mul(tf.sub(1, y), tf.log(tf.sub(1, c))))));
        }) as tf.Scalar,
    };
  }
  return { name: 'meanSquaredError', fn: (y, p) => tf.losses.meanSquaredError(y, p) as tf.Scalar };
}

/** Correct predictions in a batch (as a scalar tensor), for classification. */
export function correctCount(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(yTrue, -1), tf.argMax(yPred, -1)), 'float32')) as tf.Scalar);
}
