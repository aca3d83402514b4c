import * as tf from '@tensorflow/tfjs';
import type { Backend } from './backend-type';

/**
 * The native TensorFlow binding (tfjs-node, installed in the Docker image). It is optional:
 * where its native library could not be downloaded it fails to load, and any error there means
 * "not available". It has native gradient kernels, so graft registers none.
 */
export const tensorflow: Backend = {
  name: 'tensorflow',
  async activate() {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require('@tensorflow/tfjs-node');
    } catch (err) {
      return new Error((err as Error).message.split('\n')[0]);
    }
    return (await tf.setBackend('tensorflow')) ? null : new Error('setBackend failed');
  },
  requiredButUnavailable: (reason) => `GRAFT_BACKEND=tensorflow but @tensorflow/tfjs-node cannot be loaded (tensorflow: ${reason.message}); use the Docker image or GRAFT_BACKEND=auto.`,
  trainingKernels: [],
  kernelWrappers: {},
};
