import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { registerTrainingKernels } from './kernels';

/**
 * Backend selection. `auto` prefers the native TensorFlow binding (tfjs-node, installed in the
 * Docker image), then WebAssembly, then plain JavaScript. tfjs-node is optional: where its native
 * library could not be downloaded it fails to load, and any error there means "not available".
 */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendPreference = BackendName | 'auto';

let active: Promise<BackendName> | null = null;

function tryLoadNative(): Error | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@tensorflow/tfjs-node');
    return null;
  } catch (err) {
    return err as Error;
  }
}

async function tryWasm(): Promise<Error | null> {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
    // The .wasm binaries ship inside the package; point the loader at them instead of a CDN.
    wasm.setWasmPaths(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep);
    if (!(await tf.setBackend('wasm'))) return new Error('the wasm backend failed to initialise');
    return null;
  } catch (err) {
    return err as Error;
  }
}

async function select(preference: BackendPreference, log: (msg: string) => void): Promise<BackendName> {
  const reasons: string[] = [];
  if (preference === 'tensorflow' || preference === 'auto') {
    const err = tryLoadNative();
    if (!err && (await tf.setBackend('tensorflow'))) return 'tensorflow';
    reasons.push(`tensorflow: ${err?.message.split('\n')[0] ?? 'setBackend failed'}`);
    if (preference === 'tensorflow') throw new Error(`GRAFT_BACKEND=tensorflow but @tensorflow/tfjs-node cannot be loaded (${reasons[0]}); use the Docker image or GRAFT_BACKEND=auto.`);
  }
  if (preference === 'wasm' || preference === 'auto') {
    const err = await tryWasm();
    if (!err) {
      if (reasons.length) log(`falling back to wasm (${reasons.join('; ')})`);
      return 'wasm';
    }
    reasons.push(`wasm: ${err.message}`);
    if (preference === 'wasm') throw new Error(`GRAFT_BACKEND=wasm but the wasm backend failed: ${err.message}`);
  }
  await tf.setBackend('cpu');
  if (reasons.length) log(`falling back to cpu (${reasons.join('; ')})`);
  return 'cpu';
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
