import * as tf from '@tensorflow/tfjs';
import type { BackendName, BackendPreference } from '../../src/spec/backends';
import { BACKENDS } from './backends';
import { registerTrainingKernels } from './kernels';

/**
 * Backend selection. `auto` tries the registered backends in order (workers/engine/backends/:
 * the native TensorFlow binding, then WebAssembly, then plain JavaScript) and takes the first
 * that loads; naming one makes its failure fatal.
 */
export type { BackendName, BackendPreference } from '../../src/spec/backends';

let active: Promise<BackendName> | null = null;

async function select(preference: BackendPreference, log: (msg: string) => void): Promise<BackendName> {
  const reasons: string[] = [];
  for (const backend of BACKENDS) {
    if (preference !== 'auto' && preference !== backend.name) continue;
    const err = await backend.activate();
    if (!err) {
      if (reasons.length) log(`falling back to ${backend.name} (${reasons.join('; ')})`);
      return backend.name;
    }
    if (preference === backend.name) throw new Error(backend.requiredButUnavailable(err));
    reasons.push(`${backend.name}: ${err.message}`);
  }
  throw new Error(`no TensorFlow.js backend could be loaded (${reasons.join('; ')})`);
}

/** Initialises the backend once per process and registers the gradient kernels it lacks. */
export function initBackend(preference: BackendPreference, log: (msg: string) => void = () => undefined): Promise<BackendName> {
  active ??= select(preference, log).then(async (name) => {
    await tf.ready();
    registerTrainingKernels(name);
    log(`TensorFlow.js backend: ${name}`);
    return name;
  });
  return active;
}
