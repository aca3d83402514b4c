import * as tf from '@tensorflow/tfjs';

let ready: Promise<void> | null = null;

/**
 * The API builds networks (plans, checkpoint uploads) but never trains: the pure-JS cpu backend
 * is enough and loads nothing native.
 */
export function ensureCpuBackend(): Promise<void> {
  ready ??= tf.setBackend('cpu').then(() => tf.ready());
  return ready;
}
