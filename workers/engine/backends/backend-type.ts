import type * as tf from '@tensorflow/tfjs';
import type { BackendName } from '../../../src/spec/backends';

/**
 * One TensorFlow.js backend graft can train on: how to load and activate it, and which of
 * graft's training kernels (workers/engine/kernels/) it gets. Adding a backend is its name in
 * src/spec/backends.ts, a file here and a line in ./index.ts.
 */
export interface Backend {
  readonly name: BackendName;
  /**
   * Loads the backend's package and makes it TensorFlow.js's active backend. Resolves to null
   * on success, or to why it is unavailable (one line); never throws.
   */
  activate(): Promise<Error | null>;
  /** The start-up error when GRAFT_BACKEND names this backend and `activate` failed. */
  requiredButUnavailable(reason: Error): string;
  /** Gradient kernels from workers/engine/kernels that replace or supply the backend's own. */
  readonly trainingKernels: readonly string[];
  /** Kernels wrapped around the backend's own (they fall back to it where it does well). */
  readonly kernelWrappers: Readonly<Record<string, (stock: tf.KernelFunc) => tf.KernelFunc>>;
}
