import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { DataLayout } from '../../src/storage/layout';
import type { JobSpec } from '../../src/spec/schema';
import { initBackend } from '../../workers/engine/backend';
import { readCheckpoint, saveCheckpoint } from '../../workers/engine/checkpoint-io';
import { runJob } from '../../workers/engine/run-job';
import { makeTempDir } from '../helpers/env';

/**
 * A real MobileNet-style topology (depthwise separable convs, BatchNormalization, ReLU6, a
 * residual Add, global average pooling), built small, saved in layers format, then restored,
 * partly frozen and fine-tuned on an image-folder dataset of PNGs decoded by sharp.
 */
jest.setTimeout(180_000);

const SIZE = 32;
const CLASSES = ['horizontal', 'vertical', 'dot'];
const PER_CLASS = { train: 24, test: 8 };

function buildMobileNetStyle(): tf.LayersModel {
  const input = tf.input({ shape: [SIZE, SIZE, 3], name: 'image' });
  const relu6 = (name: string) => tf.layers.reLU({ maxValue: 6, name });
  let x = tf.layers.conv2d({ name: 'stem_conv', filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'stem_bn' }).apply(x) as tf.SymbolicTensor;
  x = relu6('stem_relu').apply(x) as tf.SymbolicTensor;
  const shortcut = x;
  let y = tf.layers.depthwiseConv2d({ name: 'block1_dw', kernelSize: 3, padding: 'same', useBias: false }).apply(x) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization({ name: 'block1_dw_bn' }).apply(y) as tf.SymbolicTensor;
  y = relu6('block1_dw_relu').apply(y) as tf.SymbolicTensor;
  y = tf.layers.conv2d({ name: 'block1_pw', filters: 8, kernelSize: 1, useBias: false }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization({ name: 'block1_pw_bn' }).apply(y) as tf.SymbolicTensor;
  x = tf.layers.add({ name: 'block1_add' }).apply([shortcut, y]) as tf.SymbolicTensor;
  x = tf.layers.depthwiseConv2d({ name: 'block2_dw', kernelSize: 3, strides: 2, padding: 'same', useBias: false }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'block2_dw_bn' }).apply(x) as tf.SymbolicTensor;
  x = relu6('block2_dw_relu').apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ name: 'block2_pw', filters: 16, kernelSize: 1, useBias: false }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'block2_pw_bn' }).apply(x) as tf.SymbolicTensor;
  x = relu6('block2_pw_relu').apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ name: 'predictions', units: 1000, activation: 'softmax' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'mobilenet_tiny' });
}

/** Draws a white stroke on black: a horizontal bar, a vertical bar, or a dot, jittered. */
async function writeImage(file: string, cls: string, i: number): Promise<void> {
  const px = Buffer.alloc(SIZE * SIZE * 3);
  const o = (i % 5) * 3 + 4;
  const paint = (r: number, c: number) => px.fill(255, (r * SIZE + c) * 3, (r * SIZE + c) * 3 + 3);
  for (let k = 4; k < SIZE - 4; k++) {
    if (cls === 'horizontal') for (let t = 0; t < 3; t++) paint(o + t, k);
    if (cls === 'vertical') for (let t = 0; t < 3; t++) paint(k, o + t);
  }
  if (cls === 'dot') for (let r = o; r < o + 6; r++) for (let c = o; c < o + 6; c++) paint(r, c);
  await sharp(px, { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toFile(file);
}

let dataDir: string;
let layout: DataLayout;

beforeAll(async () => {
  dataDir = await makeTempDir();
  layout = new DataLayout(dataDir);
  await layout.ensure();
  for (const split of ['train', 'test'] as const) {
    for (const cls of CLASSES) {
      const dir = path.join(layout.datasetsDir, 'shapes', split, cls);
      await fs.mkdir(dir, { recursive: true });
      for (let i = 0; i < PER_CLASS[split]; i++) await writeImage(path.join(dir, `${i}.png`), cls, i + (split === 'test' ? 2 : 0));
    }
  }
  await initBackend('auto');
  const source = buildMobileNetStyle();
  // A "pretrained" network has non-trivial BatchNorm statistics.
  for (const layer of source.layers.filter((l) => l.getClassName() === 'BatchNormalization')) {
    layer.setWeights(layer.getWeights().map((w, i) => tf.tidy(() => tf.add(tf.fill(w.shape, [1, 0, 0, 1][i]), tf.randomUniform(w.shape, 0, 0.2, 'float32', 5)))));
  }
  await saveCheckpoint(layout, 'mobilenet-tiny', source, { jobId: 'fixture', jobType: 'pretrain', task: 'classification', inputShape: [SIZE, SIZE, 3] });
  source.dispose();
});

afterAll(async () => {
  await fs.rm(dataDir, { recursive: true, force: true });
});

it('restores all but the classifier, freezes the stem and every BatchNorm, fine-tunes the blocks at 0.1x with a new head', async () => {
  const spec: JobSpec = {
    type: 'transfer',
    source: { checkpoint: 'mobilenet-tiny', restore: '^(stem_|block)' }, // all but the classifier (RE2 has no lookahead: name what to keep)
    // Fine-tuning recipe for BatchNorm networks: keep every BN frozen (inference mode, pretrained statistics).
    freeze: '^stem_|_bn$',
    model: { cut: 'gap', head: [{ type: 'dropout', rate: 0.2, name: 'head_dropout' }, { type: 'dense', units: 3, activation: 'softmax', name: 'head' }] },
    dataset: { name: 'shapes', validationSplit: 0 },
    training: { epochs: 25, batchSize: 8, learningRate: 0.02, seed: 4, lrMultipliers: { '^block': 0.1 } },
    output: { checkpoint: 'shapes-clf' },
  };
  const before = tf.memory().numTensors;
  const { result, manifest } = await runJob(spec, { jobId: 'mb', layout, backend: (await initBackend('auto')), featureCacheMaxBytes: 1 << 28 });
  expect(tf.memory().numTensors).toBe(before);

  expect(result.restored).toContain('block1_dw/depthwise_kernel');
  expect(result.restored).not.toContain('predictions/kernel');
  expect(result.skipped).toEqual([]); // the regex never selected the old classifier
  expect(result.frozen).toEqual(['stem_conv', 'stem_bn', 'stem_relu', 'block1_dw_bn', 'block1_pw_bn', 'block2_dw_bn', 'block2_pw_bn']);
  // The frozen stem is a deterministic prefix (its BatchNorm in inference mode) and the residual
  // only reads the stem's output, the cache boundary itself: the stem's features are computed once.
  expect(result.featureCache).toBe(true);
  expect(manifest.labels).toEqual(['dot', 'horizontal', 'vertical']);
  expect(manifest.lrMultipliers).toEqual({ block1_dw: 0.1, block1_pw: 0.1, block2_dw: 0.1, block2_pw: 0.1, head: 1 });
  // Three easy shapes: far above chance (1/3) on held-out images.
  expect(result.metrics.test!.accuracy).toBeGreaterThan(0.7);

  const src = await readCheckpoint(layout.checkpointDir('mobilenet-tiny'));
  const out = await readCheckpoint(layout.checkpointDir('shapes-clf'));
  const same = (name: string) => Buffer.from(out.weights.get(name)!.values.buffer).equals(Buffer.from(src.weights.get(name)!.values.buffer));
  for (const name of ['stem_conv/kernel', 'stem_bn/gamma', 'stem_bn/moving_mean', 'block1_pw_bn/moving_mean', 'block2_dw_bn/moving_variance', 'block2_pw_bn/beta']) expect(same(name)).toBe(true);
  for (const name of ['block1_dw/depthwise_kernel', 'block1_pw/kernel', 'block2_pw/kernel']) expect(same(name)).toBe(false);
  expect(out.weights.get('head/kernel')!.shape).toEqual([16, 3]);
});
