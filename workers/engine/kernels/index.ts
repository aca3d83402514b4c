import * as tf from '@tensorflow/tfjs';
import { conv2DBackpropFilter, conv2DBackpropInput } from './conv2d';
import { depthwiseConv2dNativeBackpropFilter, depthwiseConv2dNativeBackpropInput } from './depthwise';
import { fastTransposedMatMul } from './matmul';
import { maxPoolGrad } from './maxpool';

/**
 * Gradient kernels that make convolution training possible (wasm lacks them) and fast (cpu's and
 * some of wasm's are scalar loops), all expressed through the backend's own forward kernels.
 * tfjs-node ('tensorflow') has native ones and is left alone, as is any backend not listed.
 */

const KERNELS: Record<string, tf.KernelFunc> = {
  Conv2DBackpropFilter: conv2DBackpropFilter,
  Conv2DBackpropInput: conv2DBackpropInput,
  DepthwiseConv2dNativeBackpropFilter: depthwiseConv2dNativeBackpropFilter,
  DepthwiseConv2dNativeBackpropInput: depthwiseConv2dNativeBackpropInput,
  MaxPoolGrad: maxPoolGrad,
};

/** Which kernels replace (or supply) each backend's, chosen by measurement (bench/kernels.ts). */
export const TRAINING_KERNELS: Readonly<Record<string, readonly string[]>> = {
  wasm: ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'MaxPoolGrad'],
  cpu: ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'MaxPoolGrad'],
};

/** The stock kernels replaced, so a benchmark or test can put them back. */
const replaced = new Map<string, tf.KernelConfig>();

/** Kernels that wrap the backend's own (they fall back to it for the cases it does well). */
const WRAPPERS: Readonly<Record<string, Record<string, (stock: tf.KernelFunc) => tf.KernelFunc>>> = {
  wasm: { BatchMatMul: fastTransposedMatMul },
};
const wrapped = new Set<tf.KernelFunc>();

/** Registers graft's training kernels for `backendName`; safe to call any number of times. */
export function registerTrainingKernels(backendName: string): void {
  for (const [kernelName, wrap] of Object.entries(WRAPPERS[backendName] ?? {})) {
    const existing = tf.getKernel(kernelName, backendName);
    if (!existing || wrapped.has(existing.kernelFunc)) continue;
    const kernelFunc = wrap(existing.kernelFunc);
    wrapped.add(kernelFunc);
    replaced.set(`${backendName}/${kernelName}`, existing);
    tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({ ...existing, kernelFunc });
  }
  for (const kernelName of TRAINING_KERNELS[backendName] ?? []) {
    const kernelFunc = KERNELS[kernelName];
    const existing = tf.getKernel(kernelName, backendName);
    if (existing?.kernelFunc === kernelFunc) continue;
    if (existing) {
      replaced.set(`${backendName}/${kernelName}`, existing);
      tf.unregisterKernel(kernelName, backendName);
    }
    tf.registerKernel({ kernelName, backendName, kernelFunc });
  }
}

/** Undoes registerTrainingKernels (stock kernels back, missing ones missing again). */
export function unregisterTrainingKernels(backendName: string): void {
  for (const kernelName of Object.keys(WRAPPERS[backendName] ?? {})) {
    const current = tf.getKernel(kernelName, backendName);
    const original = replaced.get(`${backendName}/${kernelName}`);
    if (!current || !original || !wrapped.has(current.kernelFunc)) continue;
    tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel(original);
  }
  for (const kernelName of TRAINING_KERNELS[backendName] ?? []) {
    if (tf.getKernel(kernelName, backendName)?.kernelFunc !== KERNELS[kernelName]) continue;
    tf.unregisterKernel(kernelName, backendName);
    const original = replaced.get(`${backendName}/${kernelName}`);
    if (original) tf.registerKernel(original);
  }
}
