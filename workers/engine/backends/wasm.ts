import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fastTransposedMatMul } from '../kernels/matmul';
import type { Backend } from './backend-type';

/** WebAssembly: no native library, but no convolution gradients of its own either. */
export const wasm: Backend = {
  name: 'wasm',
  async activate() {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const backend = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
      // The .wasm binaries ship inside the package; point the loader at them instead of a CDN.
      backend.setWasmPaths(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep);
      if (!(await tf.setBackend('wasm'))) return new Error('the wasm backend failed to initialise');
      return null;
    } catch (err) {
      return err as Error;
    }
  },
  requiredButUnavailable: (reason) => `GRAFT_BACKEND=wasm but the wasm backend failed: ${reason.message}`,
  // Chosen by measurement (bench/kernels.ts).
  trainingKernels: ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'MaxPoolGrad'],
  kernelWrappers: { BatchMatMul: fastTransposedMatMul },
};
