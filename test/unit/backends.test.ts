import * as tf from '@tensorflow/tfjs';
import { ConfigSchema } from '../../src/config';
import { BACKEND_NAMES, BACKEND_PREFERENCES } from '../../src/spec/backends';
import { initBackend } from '../../workers/engine/backend';
import { BACKENDS } from '../../workers/engine/backends';
import { TRAINING_KERNELS } from '../../workers/engine/kernels';
import { maxPoolGrad } from '../../workers/engine/kernels/maxpool';

/** The backend registry (workers/engine/backends/) against the core's list of names. */
describe('backend registry', () => {
  it('has one entry per core backend name, in auto order, and GRAFT_BACKEND accepts exactly those plus auto', () => {
    expect(BACKENDS.map((b) => b.name)).toEqual([...BACKEND_NAMES]);
    expect((ConfigSchema.properties.GRAFT_BACKEND as unknown as { enum: string[] }).enum).toEqual([...BACKEND_PREFERENCES]);
  });

  it('takes each backend\'s training kernels from its entry', () => {
    expect(TRAINING_KERNELS).toEqual({ wasm: BACKENDS[1].trainingKernels, cpu: BACKENDS[2].trainingKernels });
    expect(TRAINING_KERNELS.tensorflow).toBeUndefined();
  });

  it('initialises a named backend and registers its kernels', async () => {
    const logs: string[] = [];
    await expect(initBackend('cpu', (m) => logs.push(m))).resolves.toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(logs).toEqual(['TensorFlow.js backend: cpu']);
    expect(TRAINING_KERNELS.cpu).toContain('MaxPoolGrad');
    expect(tf.getKernel('MaxPoolGrad', 'cpu')?.kernelFunc).toBe(maxPoolGrad);
  });
});
