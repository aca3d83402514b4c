import { promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import type { Augment } from '../../src/spec/preprocess';
import type { JobSpec } from '../../src/spec/schema';
import { DataLayout } from '../../src/storage/layout';
import { listTrainingCheckpoints } from '../../src/storage/training-checkpoints';
import { initBackend } from '../../workers/engine/backend';
import { readCheckpoint } from '../../workers/engine/checkpoint-io';
import { augmentBatch, augmentRandom } from '../../workers/engine/data/augment';
import { planJob } from '../../workers/engine/plan';
import { runJob } from '../../workers/engine/run-job';
import { makeTempDir } from '../helpers/env';
import { writeImageDataset } from '../helpers/images';

/**
 * training.augment (issue 13): seeded per (seed, epoch, batch), so the same seed gives the same
 * weights and an interrupted + resumed run equals an uninterrupted one.
 */
jest.setTimeout(180_000);

let dataDir: string;
let layout: DataLayout;
let backend: Awaited<ReturnType<typeof initBackend>>;
const AUGMENT = { flipHorizontal: true, flipVertical: true, rotate: 15, crop: { scale: [0.8, 1] as [number, number] }, brightness: 0.1, contrast: 0.2, translate: 0.1 };
const ctx = (jobId: string, extra: Partial<Parameters<typeof runJob>[1]> = {}) => ({ jobId, layout, backend, featureCacheMaxBytes: 1 << 26, sampleCacheShardBytes: 1 << 16, ...extra });
const spec = (output: string, augment: Augment | null = AUGMENT): JobSpec => ({
  type: 'pretrain',
  model: { architecture: 'conv-classifier', options: { filters: [4], kernelSize: 3, inputShape: [12, 12, 3] } },
  dataset: { name: 'shades', validationSplit: 0.2, preprocess: { scaling: 'symmetric' } },
  training: { epochs: 3, batchSize: 8, learningRate: 0.01, seed: 11, ...(augment ? { augment } : {}) },
  output: { checkpoint: output },
});

async function weightsOf(name: string): Promise<Map<string, Float32Array>> {
  const ckpt = await readCheckpoint(layout.checkpointDir(name));
  return new Map([...ckpt.weights].map(([k, w]) => [k, Float32Array.from(w.values)]));
}

const same = (a: Map<string, Float32Array>, b: Map<string, Float32Array>) => [...a].every(([k, v]) => Buffer.from(v.buffer).equals(Buffer.from(b.get(k)!.buffer)));

beforeAll(async () => {
  dataDir = await makeTempDir();
  layout = new DataLayout(dataDir);
  await layout.ensure();
  await writeImageDataset(dataDir, 'shades', { train: 24, test: 8 });
  backend = await initBackend('auto');
});

afterAll(async () => {
  await fs.rm(dataDir, { recursive: true, force: true });
});

describe('augmentBatch', () => {
  it('is a pure function of (seed, epoch, batch): same draw, same output; another batch, another output', () => {
    const x = tf.randomUniform([4, 12, 12, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
    const a = augmentBatch(x, AUGMENT, augmentRandom(1, 2, 3), 2).dataSync();
    const b = augmentBatch(x, AUGMENT, augmentRandom(1, 2, 3), 2).dataSync();
    const c = augmentBatch(x, AUGMENT, augmentRandom(1, 2, 4), 2).dataSync();
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false);
    expect(Buffer.from(a.buffer).equals(Buffer.from(x.dataSync().buffer))).toBe(false);
    // A horizontal flip alone mirrors rows exactly (the transform is exact on the pixel grid).
    const flips = Array.from({ length: 16 }, (_, batch) => augmentBatch(x, { flipHorizontal: true }, augmentRandom(0, 0, batch), 2));
    const mirrored = tf.reverse(x, 2).dataSync();
    const flippedOnce = flips.some((f) => { const d = f.dataSync(); return Array.from(d.subarray(0, 432)).every((v, i) => Math.abs(v - mirrored[i]) < 1e-5); });
    expect(flippedOnce).toBe(true);
    tf.dispose([x, ...flips]);
  });
});

describe('augmented training', () => {
  it('same seed → identical weights; augmentation changes them; feature caching says it is off', async () => {
    const warnings: string[] = [];
    await runJob(spec('aug-1'), ctx('a1', { onWarning: (m) => void warnings.push(m) }));
    await runJob(spec('aug-2'), ctx('a2'));
    await runJob(spec('plain', null), ctx('p'));
    const [w1, w2, w0] = await Promise.all([weightsOf('aug-1'), weightsOf('aug-2'), weightsOf('plain')]);
    expect(same(w1, w2)).toBe(true);
    expect(same(w1, w0)).toBe(false);
    // conv-classifier has no frozen prefix, so no warning is due here; a transfer job gets one:
    expect(warnings.filter((m) => /Feature caching is off/.test(m))).toEqual([]);
    const transferWarnings: string[] = [];
    const t = await runJob(
      { ...spec('aug-t'), type: 'transfer', source: { checkpoint: 'plain' }, freeze: '^enc_conv', model: undefined },
      ctx('at', { onWarning: (m) => void transferWarnings.push(m) }),
    );
    expect(transferWarnings.some((m) => /Feature caching is off: training.augment/.test(m))).toBe(true);
    expect(t.result.featureCache).toBe(false);
    // ...and the plan says so before the job runs.
    const planInput = { datasetShape: [12, 12, 3] as [number, number, number], numClasses: 2, loadSource: (name: string) => readCheckpoint(layout.checkpointDir(name)) };
    const transferSpec: JobSpec = { ...spec('aug-plan'), type: 'transfer', source: { checkpoint: 'plain' }, freeze: '^enc_conv', model: undefined };
    const planned = await planJob(transferSpec, planInput);
    expect(planned.featureCache).toMatchObject({ applies: false, reason: expect.stringMatching(/training.augment/) });
    const unaugmented = await planJob({ ...transferSpec, training: { seed: 1 } }, planInput);
    expect(unaugmented.featureCache).toMatchObject({ applies: true });
    expect(unaugmented.featureCache.reason).toBeUndefined();
  });

  it('an interrupted and resumed augmented run equals an uninterrupted one', async () => {
    const straight = await runJob(spec('aug-straight'), ctx('straight', { checkpointKeep: 2 }));
    const interrupt = new AbortController();
    const first = runJob(spec('aug-resumed'), ctx('resumed', {
      checkpointKeep: 2,
      interrupt: interrupt.signal,
      onProgress: (p) => {
        if (p.phase === 'training' && p.epoch === 2 && p.batch === 3) interrupt.abort();
      },
    }));
    await expect(first).rejects.toMatchObject({ name: 'JobInterruptedError', epoch: 2, batch: 3 });
    expect((await listTrainingCheckpoints(layout, 'resumed')).map((c) => [c.epoch, c.batch])).toEqual([[2, 0], [2, 3]]);
    const resumed = await runJob(spec('aug-resumed'), ctx('resumed', { checkpointKeep: 2 }));
    expect(resumed.result.metrics.test!.loss).toBeCloseTo(straight.result.metrics.test!.loss, 5);
    const a = await weightsOf('aug-straight');
    const b = await weightsOf('aug-resumed');
    for (const [name, values] of a) values.forEach((v, i) => expect(Math.abs(v - b.get(name)![i])).toBeLessThan(1e-5));
  });
});
