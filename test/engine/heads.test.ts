import { promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import type { JobSpec } from '../../src/spec/schema';
import { DataLayout } from '../../src/storage/layout';
import { initBackend } from '../../workers/engine/backend';
import { readCheckpoint } from '../../workers/engine/checkpoint-io';
import { buildLayer } from '../../workers/engine/layers';
import { lossFor } from '../../workers/engine/losses';
import { planJob } from '../../workers/engine/plan';
import { runJob } from '../../workers/engine/run-job';
import { makeTempDir } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';

/**
 * Head types come from the registry (src/spec/heads/) and the engine builds them generically:
 * layerNormalization was added with one file and one registration line, and must plan, build
 * and train like the others. Also: the loss of a network that ends in a Softmax layer.
 */
jest.setTimeout(180_000);

let dataDir: string;
let layout: DataLayout;
let backend: Awaited<ReturnType<typeof initBackend>>;

const ctx = (jobId: string) => ({ jobId, layout, backend, featureCacheMaxBytes: 0 });

const lnTransfer = (output: string): JobSpec => ({
  type: 'transfer',
  source: { checkpoint: 'tiny-cae', restore: '^enc_conv' },
  freeze: '^enc_conv',
  model: { cut: 'enc_flatten', head: [{ type: 'layerNormalization', epsilon: 0.01 }, { type: 'dense', units: 10, activation: 'softmax', name: 'fc' }] },
  dataset: { name: 'digits', validationSplit: 0.1 },
  training: { epochs: 1, batchSize: 32, learningRate: 0.01, seed: 5 },
  output: { checkpoint: output },
});

beforeAll(async () => {
  dataDir = await makeTempDir();
  layout = new DataLayout(dataDir);
  await layout.ensure();
  await writeMnistDataset(dataDir, 'digits', { train: 160, test: 40 });
  backend = await initBackend('auto');
  await runJob(
    {
      type: 'pretrain',
      model: { architecture: 'conv-autoencoder', options: { filters: [4], bottleneck: 0 } },
      dataset: { name: 'digits' },
      training: { epochs: 1, batchSize: 64, seed: 1 },
      output: { checkpoint: 'tiny-cae' },
    },
    ctx('pretrain'),
  );
});

afterAll(async () => {
  await fs.rm(dataDir, { recursive: true, force: true });
});

describe('a layerNormalization head (registered in src/spec/heads)', () => {
  it('appears in the plan with its class and parameters', async () => {
    const plan = await planJob(lnTransfer('ln-plan'), { datasetShape: [28, 28, 1], numClasses: 10, loadSource: (name) => readCheckpoint(layout.checkpointDir(name)) });
    const ln = plan.layers.find((l) => l.name === 'head_0_layerNormalization');
    // enc_flatten of a 4-filter, kernel-5 encoder on 28x28: 12 * 12 * 4 = 576 features; gamma + beta.
    expect(ln).toMatchObject({ className: 'LayerNormalization', params: 2 * 576, frozen: false, restored: false });
  });

  it('trains: its gamma and beta move away from their ones/zeros initialisation', async () => {
    const { result } = await runJob(lnTransfer('ln-trained'), ctx('ln'));
    expect(result.epochsRun).toBe(1);
    const saved = await readCheckpoint(layout.checkpointDir('ln-trained'));
    const gamma = saved.weights.get('head_0_layerNormalization/gamma')!;
    const beta = saved.weights.get('head_0_layerNormalization/beta')!;
    expect(gamma.shape).toEqual([576]);
    expect(Array.from(gamma.values).some((v) => v !== 1)).toBe(true);
    expect(Array.from(beta.values).some((v) => v !== 0)).toBe(true);
  });

  it('builds with the given epsilon', () => {
    const layer = buildLayer({ name: 'ln', className: 'LayerNormalization', config: { epsilon: 0.01 } }, 0);
    expect(layer.getClassName()).toBe('LayerNormalization');
    expect((layer.getConfig() as { epsilon: number }).epsilon).toBe(0.01);
  });
});

describe('the loss of a network ending in a Softmax layer', () => {
  const inputs = [[0.5, -1, 2, 0.1], [1, 1, -0.5, 0.3]];
  const labels = [[0, 1, 0], [1, 0, 0]];

  /** Categorical cross-entropy of probabilities, by hand. */
  const crossEntropy = (probs: number[][], labels: number[][]) => -probs.reduce((sum, p, i) => sum + labels[i].reduce((s, t, k) => s + t * Math.log(p[k]), 0), 0) / probs.length;

  it.each([
    ['a Softmax layer', () => tf.layers.softmax({})],
    ['an Activation("softmax") layer', () => tf.layers.activation({ activation: 'softmax' })],
  ])('is the cross-entropy of its outputs for %s, not of softmax(outputs)', async (_name, last) => {
    const model = tf.sequential({ layers: [buildLayer({ name: 'logits', className: 'Dense', config: { units: 3, inputShape: [4] } }, 7), last()] });
    // The same network rebuilt from its JSON topology, as a user topology would be.
    const rebuilt = await tf.models.modelFromJSON({ modelTopology: model.toJSON(null, false) } as never);
    rebuilt.setWeights(model.getWeights());
    const [x, y] = [tf.tensor2d(inputs), tf.tensor2d(labels)];
    const probs = (rebuilt.predict(x) as tf.Tensor).arraySync() as number[][];
    const { name, fn } = lossFor(rebuilt, 'classification');
    expect(name).toBe('categoricalCrossentropy');
    const loss = fn(y, tf.tensor2d(probs)).dataSync()[0];
    expect(loss).toBeCloseTo(crossEntropy(probs, labels), 5);
    const doubleSoftmax = tf.losses.softmaxCrossEntropy(y, tf.tensor2d(probs)).dataSync()[0];
    expect(Math.abs(loss - doubleSoftmax)).toBeGreaterThan(1e-3);
    tf.dispose([x, y]);
    model.dispose();
    rebuilt.dispose();
  });
});
