import * as tf from '@tensorflow/tfjs';
import { BACKENDS, backendNamed } from '../backends';
import { conv2DBackpropFilter, conv2DBackpropInput } from './conv2d';
import { depthwiseConv2dNativeBackpropFilter, depthwiseConv2dNativeBackpropInput } from './depthwise';
import { maxPoolGrad } from './maxpool';

/**
 * Gradient kernels that make convolution training possible (wasm lacks them) and fast (cpu's and
 * some of wasm's are scalar loops), all expressed through the backend's own forward kernels.
 * Which backend gets which is part of that backend's entry (workers/engine/backends/); tfjs-node
 * ('tensorflow') has native ones and gets none, as does any backend not registered.
 */

const KERNELS: Record<string, tf.KernelFunc> = {
  Conv2DBackpropFilter: conv2DBackpropFilter,
  Conv2DBackpropInput: conv2DBackpropInput,
  DepthwiseConv2dNativeBackpropFilter: depthwiseConv2dNativeBackpropFilter,
  DepthwiseConv2dNativeBackpropInput: depthwiseConv2dNativeBackpropInput,
  MaxPoolGrad: maxPoolGrad,
};

/** Which kernels replace (or supply) each backend's, from the backend registry. */
export const TRAINING_KERNELS: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  BACKENDS.filter((b) => b.trainingKernels.length > 0).map((b) => [b.name, b.trainingKernels]),
);

/** The stock kernels replaced, so a benchmark or test can put them back. */
const replaced = new Map<string, tf.KernelConfig>();

/** Kernels that wrap the backend's own (they fall back to it for the cases it does well). */
const wrappersOf = (backendName: string) => backendNamed(backendName)?.kernelWrappers ?? {};
const wrapped = new Set<tf.KernelFunc>();

/** Registers graft's training kernels for `backendName`; safe to call any number of times. */
export function registerTrainingKernels(backendName: string): void {
  for (const [kernelName, wrap] of Object.entries(wrappersOf(backendName))) {
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
  for (const kernelName of Object.keys(wrappersOf(backendName))) {
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
