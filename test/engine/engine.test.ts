import * as tf from '@tensorflow/tfjs';
import { DataLayout } from '../../src/storage/layout';
import type { JobSpec } from '../../src/spec/schema';
import { initBackend } from '../../workers/engine/backend';
import { readCheckpoint, saveCheckpoint } from '../../workers/engine/checkpoint-io';
import { runJob } from '../../workers/engine/run-job';
import { listTrainingCheckpoints } from '../../src/storage/training-checkpoints';
import { makeTempDir } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';
import { promises as fs } from 'node:fs';

/**
 * The training engine on tiny real models and real MNIST digits, in-process on the fallback
 * backend CI has (wasm with graft's gradient kernels, else cpu).
 */
jest.setTimeout(180_000);

let dataDir: string;
let layout: DataLayout;
let backend: Awaited<ReturnType<typeof initBackend>>;

const ctx = (jobId: string, extra: Partial<Parameters<typeof runJob>[1]> = {}) => ({ jobId, layout, backend, featureCacheMaxBytes: 256 * 1024 * 1024, ...extra });

const transferSpec = (output: string, over: Partial<JobSpec> = {}): JobSpec => ({
  type: 'transfer',
  source: { checkpoint: 'cae', restore: '^enc_conv' },
  freeze: '^enc_conv',
  model: { cut: 'enc_flatten', head: [{ type: 'dense', units: 10, activation: 'softmax', name: 'fc' }] },
  dataset: { name: 'digits', validationSplit: 0.1 },
  training: { epochs: 2, batchSize: 32, learningRate: 0.003, seed: 3 },
  output: { checkpoint: output },
  ...over,
});

async function weightsOf(name: string): Promise<Map<string, Float32Array>> {
  const ckpt = await readCheckpoint(layout.checkpointDir(name));
  return new Map([...ckpt.weights].map(([k, w]) => [k, Float32Array.from(w.values)]));
}

beforeAll(async () => {
  dataDir = await makeTempDir();
  layout = new DataLayout(dataDir);
  await layout.ensure();
  await writeMnistDataset(dataDir, 'digits', { train: 600, test: 200 });
  backend = await initBackend('auto');
  await runJob(
    {
      type: 'pretrain',
      model: { architecture: 'conv-autoencoder', options: { filters: [4, 8], bottleneck: 16 } },
      dataset: { name: 'digits' },
      training: { epochs: 1, batchSize: 64, seed: 1 },
      output: { checkpoint: 'cae' },
    },
    ctx('pretrain'),
  );
});

afterAll(async () => {
  await fs.rm(dataDir, { recursive: true, force: true });
});

describe('pretrain', () => {
  it('wrote a conv autoencoder whose encoder layers carry the contract names', async () => {
    const manifest = JSON.parse(await fs.readFile(`${layout.checkpointDir('cae')}/manifest.json`, 'utf8'));
    expect(manifest.task).toBe('reconstruction');
    expect(manifest.layers.filter((l: { className: string }) => l.className !== 'InputLayer').map((l: { name: string }) => l.name).slice(0, 5)).toEqual(['enc_conv1', 'enc_pool1', 'enc_conv2', 'enc_pool2', 'enc_flatten']);
    expect(manifest.metrics.validation.loss).toBeGreaterThan(0);
    expect(manifest.metrics.validation.loss).toBeLessThan(0.7); // below an untrained sigmoid's ~0.69 BCE
    expect(manifest.backend).toBe(backend);
  });
});

describe('transfer', () => {
  it('restores and freezes the encoder: frozen weights are bit-identical, the head trains', async () => {
    const before = await weightsOf('cae');
    const { result } = await runJob(transferSpec('t-frozen'), ctx('t1'));
    const after = await weightsOf('t-frozen');
    for (const name of ['enc_conv1/kernel', 'enc_conv1/bias', 'enc_conv2/kernel', 'enc_conv2/bias']) {
      expect(Buffer.from(after.get(name)!.buffer).equals(Buffer.from(before.get(name)!.buffer))).toBe(true);
    }
    expect(after.has('dec_deconv1/kernel')).toBe(false);
    expect(result.metrics.test!.accuracy).toBeGreaterThan(0.3);
    expect(result.featureCache).toBe(true);
  });

  it('gives the same metrics with and without the feature cache', async () => {
    const cached = await runJob(transferSpec('t-cached'), ctx('t2'));
    const uncached = await runJob(transferSpec('t-uncached'), ctx('t3', { featureCacheMaxBytes: 0 }));
    expect(cached.result.featureCache).toBe(true);
    expect(uncached.result.featureCache).toBe(false);
    expect(uncached.result.metrics.test!.loss).toBeCloseTo(cached.result.metrics.test!.loss, 4);
    expect(uncached.result.metrics.test!.accuracy).toBeCloseTo(cached.result.metrics.test!.accuracy!, 3);
  });

  it('trains each lrMultipliers group with its own optimizer (Adam steps scale with the multiplier)', async () => {
    const before = await weightsOf('cae');
    await runJob(
      transferSpec('t-lr', {
        freeze: undefined,
        dataset: { name: 'digits', validationSplit: 0, limit: 32 },
        training: { epochs: 1, batchSize: 32, learningRate: 0.01, seed: 3, lrMultipliers: { '^enc_conv': 0.1 } },
      }),
      ctx('t4'),
    );
    const after = await weightsOf('t-lr');
    // One Adam step moves every weight by about lr * multiplier (its update is ~sign(gradient)).
    const maxStep = (name: string) => Math.max(...after.get(name)!.map((v, i) => Math.abs(v - before.get(name)![i])));
    expect(maxStep('enc_conv1/kernel')).toBeGreaterThan(0.0005);
    expect(maxStep('enc_conv1/kernel')).toBeLessThan(0.0015);
  });

  it('leaves no tensors behind after a successful or a failed job', async () => {
    const baseline = tf.memory().numTensors;
    await runJob(transferSpec('t-leak-ok'), ctx('t5'));
    expect(tf.memory().numTensors).toBe(baseline);
    const wrong = transferSpec('t-leak-fail', { model: { cut: 'enc_flatten', head: [{ type: 'dense', units: 3, activation: 'softmax' }] } });
    await expect(runJob(wrong, ctx('t6'))).rejects.toMatchObject({ code: 'output_classes_mismatch' });
    expect(tf.memory().numTensors).toBe(baseline);
    // A source whose weights are already NaN makes the first batch's loss NaN: the job must stop with `diverged`.
    const nanSrc = tf.sequential({ name: 'nan-src' });
    nanSrc.add(tf.layers.flatten({ name: 'flat', inputShape: [28, 28, 1] }));
    nanSrc.add(tf.layers.dense({ name: 'fc', units: 10, activation: 'softmax' }));
    nanSrc.getLayer('fc').setWeights([tf.fill([784, 10], NaN), tf.zeros([10])]);
    await saveCheckpoint(layout, 'nan-src', nanSrc, { jobId: 'fixture', jobType: 'pretrain', task: 'classification' });
    nanSrc.dispose();
    const baselineNan = tf.memory().numTensors;
    const diverging: JobSpec = { ...transferSpec('t-leak-nan'), source: { checkpoint: 'nan-src' }, freeze: undefined, model: undefined };
    await expect(runJob(diverging, ctx('t7'))).rejects.toMatchObject({ code: 'diverged', param: '/training/learningRate' });
    expect(tf.memory().numTensors).toBe(baselineNan);
  });

  it('stops between batches when the signal aborts', async () => {
    const controller = new AbortController();
    let batches = 0;
    const run = runJob(transferSpec('t-abort', { training: { epochs: 5, batchSize: 16, seed: 1 } }), ctx('t8', {
      signal: controller.signal,
      featureCacheMaxBytes: 0,
      onProgress: (p) => {
        if (p.phase === 'training' && ++batches === 3) controller.abort();
      },
    }));
    await expect(run).rejects.toMatchObject({ code: 'cancelled' });
    expect(batches).toBe(3);
    await expect(fs.stat(layout.checkpointDir('t-abort'))).rejects.toThrow();
  });
});

describe('frozen BatchNormalization', () => {
  it('runs in inference mode: moving statistics and weights unchanged after training', async () => {
    const src = tf.sequential({ name: 'bn-src' });
    src.add(tf.layers.conv2d({ name: 'conv', inputShape: [28, 28, 1], filters: 4, kernelSize: 3, strides: 2 }));
    src.add(tf.layers.batchNormalization({ name: 'bn' }));
    src.add(tf.layers.flatten({ name: 'flat' }));
    src.add(tf.layers.dense({ name: 'fc', units: 10, activation: 'softmax' }));
    // Non-trivial moving statistics, as a pretrained network would have.
    const bn = src.getLayer('bn');
    bn.setWeights(bn.getWeights().map((w, i) => tf.fill(w.shape, [1.5, 0.2, 0.3, 2.0][i])));
    await saveCheckpoint(layout, 'bn-src', src, { jobId: 'fixture', jobType: 'pretrain', task: 'classification' });
    src.dispose();

    await runJob(
      { ...transferSpec('bn-out'), source: { checkpoint: 'bn-src' }, freeze: ['bn'], model: undefined, training: { epochs: 1, batchSize: 32, learningRate: 0.01, seed: 2 } },
      ctx('bn', { featureCacheMaxBytes: 0 }),
    );
    const before = await weightsOf('bn-src');
    const after = await weightsOf('bn-out');
    for (const w of ['bn/gamma', 'bn/beta', 'bn/moving_mean', 'bn/moving_variance']) {
      expect(Array.from(after.get(w)!)).toEqual(Array.from(before.get(w)!));
    }
    expect(Array.from(after.get('conv/kernel')!)).not.toEqual(Array.from(before.get('conv/kernel')!));
  });
});

describe('training controls', () => {
  it('stops early when the validation loss stops improving, and can keep the best epoch', async () => {
    // minDelta larger than any possible improvement: epoch 2 cannot count as better than epoch 1.
    const { result, manifest } = await runJob(
      transferSpec('t-early', { training: { epochs: 6, batchSize: 32, seed: 3, earlyStopping: { patience: 1, minDelta: 10 } }, output: { checkpoint: 't-early', select: 'best' } }),
      ctx('t9'),
    );
    expect(result.epochsRun).toBe(2);
    expect(manifest.history).toHaveLength(2);
    expect(manifest.metrics).toMatchObject({ training: { stoppedEarly: true, bestEpoch: 1 } });
  });

  it('builds the target from a full model.topology and restores weights by name', async () => {
    const target = tf.sequential({ name: 'custom' });
    target.add(tf.layers.inputLayer({ inputShape: [28, 28, 1], name: 'input' }));
    target.add(tf.layers.conv2d({ name: 'enc_conv1', filters: 4, kernelSize: 5, activation: 'relu' }));
    target.add(tf.layers.maxPooling2d({ name: 'pool', poolSize: 4 }));
    target.add(tf.layers.flatten({ name: 'flat' }));
    target.add(tf.layers.dense({ name: 'out', units: 10, activation: 'softmax' }));
    const topology = target.toJSON(null, false) as Record<string, unknown>;
    target.dispose();
    const before = await weightsOf('cae');
    const { result } = await runJob(
      transferSpec('t-topology', { source: { checkpoint: 'cae', restore: '^enc_conv1/' }, freeze: ['enc_conv1'], model: { topology } }),
      ctx('t10'),
    );
    expect(result.restored).toEqual(['enc_conv1/kernel', 'enc_conv1/bias']);
    const after = await weightsOf('t-topology');
    expect(Array.from(after.get('enc_conv1/kernel')!)).toEqual(Array.from(before.get('enc_conv1/kernel')!));
    expect(after.get('out/kernel')!.length).toBe(6 * 6 * 4 * 10);
  });

  it('reports same-name weights of another shape as shape_mismatch', async () => {
    const target = tf.sequential({ name: 'wide' });
    target.add(tf.layers.conv2d({ name: 'enc_conv1', inputShape: [28, 28, 1], filters: 6, kernelSize: 5 }));
    target.add(tf.layers.flatten({ name: 'flat' }));
    target.add(tf.layers.dense({ name: 'out', units: 10, activation: 'softmax' }));
    const topology = target.toJSON(null, false) as Record<string, unknown>;
    target.dispose();
    const baseline = tf.memory().numTensors;
    await expect(runJob(transferSpec('t-mismatch', { freeze: undefined, model: { topology } }), ctx('t11'))).rejects.toMatchObject({
      code: 'shape_mismatch',
      details: [{ name: 'enc_conv1/kernel', sourceShape: [5, 5, 1, 4], targetShape: [5, 5, 1, 6] }, { name: 'enc_conv1/bias', sourceShape: [4], targetShape: [6] }],
    });
    expect(tf.memory().numTensors).toBe(baseline);
  });
});

describe('training checkpoints', () => {
  it('an interrupted job resumes exactly where it stopped: same result as an uninterrupted run', async () => {
    const spec = (out: string): JobSpec => transferSpec(out, {
      freeze: undefined, // the convs train too: weights and Adam state must both survive
      training: { epochs: 3, batchSize: 32, seed: 5, lrMultipliers: { '^enc_conv': 0.1 } },
      output: { checkpoint: out, select: 'best' },
    });
    const straight = await runJob(spec('t-straight'), ctx('straight', { checkpointKeep: 2, featureCacheMaxBytes: 0 }));

    const interrupt = new AbortController();
    const first = runJob(spec('t-resumed'), ctx('resumed', {
      checkpointKeep: 2,
      featureCacheMaxBytes: 0,
      interrupt: interrupt.signal,
      onProgress: (p) => {
        if (p.phase === 'training' && p.epoch === 2 && p.batch === 5) interrupt.abort();
      },
    }));
    await expect(first).rejects.toMatchObject({ name: 'JobInterruptedError', epoch: 2, batch: 5 });
    const saved = await listTrainingCheckpoints(layout, 'resumed');
    expect(saved.map((c) => [c.epoch, c.batch])).toEqual([[2, 0], [2, 5]]);
    expect(saved[1].metrics).toMatchObject({ epoch: 1 });

    const events: string[] = [];
    const resumed = await runJob(spec('t-resumed'), ctx('resumed', { checkpointKeep: 2, featureCacheMaxBytes: 0, onEvent: (m) => void events.push(m) }));
    expect(events.some((m) => /Resuming from the checkpoint at epoch 2, batch 5/.test(m))).toBe(true);
    expect(resumed.manifest.history).toHaveLength(3);
    expect(resumed.result.metrics.test!.loss).toBeCloseTo(straight.result.metrics.test!.loss, 5);
    expect(resumed.result.metrics.test!.accuracy).toBe(straight.result.metrics.test!.accuracy);
    const a = await weightsOf('t-straight');
    const b = await weightsOf('t-resumed');
    for (const [name, values] of a) {
      const other = b.get(name)!;
      values.forEach((v, i) => expect(Math.abs(v - other[i])).toBeLessThan(1e-5));
    }
  });
});
