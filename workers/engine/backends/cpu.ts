import * as tf from '@tensorflow/tfjs';
import type { Backend } from './backend-type';

/** Plain JavaScript: always there, the last resort of `auto`. */
export const cpu: Backend = {
  name: 'cpu',
  async activate() {
    await tf.setBackend('cpu');
    return null;
  },
  requiredButUnavailable: (reason) => `GRAFT_BACKEND=cpu but the cpu backend failed: ${reason.message}`,
  // Its own are scalar loops; chosen by measurement (bench/kernels.ts).
  trainingKernels: ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'MaxPoolGrad'],
  kernelWrappers: {},
};
