import * as tf from '@tensorflow/tfjs';

/**
 * Shape inference with TensorFlow.js's own layer code. While `fn` runs, every weight a layer
 * creates is a scalar placeholder that only *reports* its real shape: building a network then
 * costs no memory for its weights and no time in its initialisers (an Orthogonal initialiser on a
 * 4096-unit layer is a QR decomposition of 16M numbers). Shapes, parameter counts and weight names
 * come out exactly as a real build gives them, because the real `addWeight` still runs (name
 * scoping, duplicate checks, trainable bookkeeping), only on a scalar.
 *
 * Not re-entrant across concurrent real builds in the same thread: the plan task runs alone in its
 * pool thread (one task per thread), and training never plans.
 */
type AddWeight = (
  name: string,
  shape: number[],
  dtype?: tf.DataType,
  initializer?: unknown,
  regularizer?: unknown,
  trainable?: boolean,
  constraint?: unknown,
  getInitializerFunc?: () => unknown,
) => tf.LayerVariable;

const SCALAR_PLACEHOLDER = { apply: (_shape: number[], dtype?: tf.DataType) => tf.zeros([], dtype ?? 'float32'), getClassName: () => 'ShapeOnly' };

export async function withShapeOnlyWeights<T>(fn: () => Promise<T>): Promise<T> {
  const proto = tf.layers.Layer.prototype as unknown as { addWeight: AddWeight };
  const original = proto.addWeight;
  proto.addWeight = function (this: tf.layers.Layer, name, shape, dtype, _initializer, regularizer, trainable, constraint) {
    const weight = original.call(this, name, [], dtype, SCALAR_PLACEHOLDER, regularizer, trainable, constraint, () => SCALAR_PLACEHOLDER);
    // LayerVariable.shape is a plain field read by countParams, restore planning and the layer table.
    (weight as unknown as { shape: number[] }).shape = [...shape];
    return weight;
  };
  try {
    return await fn();
  } finally {
    proto.addWeight = original;
  }
}
