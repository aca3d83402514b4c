import { promises as fs } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { JobSpec } from '../../src/spec/schema';
import { scalingTables } from '../../src/spec/preprocess';
import { DataLayout } from '../../src/storage/layout';
import { initBackend } from '../../workers/engine/backend';
import { importCheckpoint } from '../../workers/engine/checkpoint-io';
import { preprocessImage } from '../../workers/engine/data/preprocess';
import { evaluateCheckpoint } from '../../workers/engine/evaluate-checkpoint';
import { runJob } from '../../workers/engine/run-job';
import { makeTempDir } from '../helpers/env';
import { writeImageDataset } from '../helpers/images';

/**
 * Preprocessing as data (issue 13): the policy a checkpoint trained with is recorded in its
 * manifest and used by what feeds it later, and getting it wrong visibly changes the outputs.
 */
jest.setTimeout(180_000);

let dataDir: string;
let layout: DataLayout;
let backend: Awaited<ReturnType<typeof initBackend>>;
const SHARD = 1 << 20;
const ctx = (jobId: string, extra: Partial<Parameters<typeof runJob>[1]> = {}) => ({ jobId, layout, backend, featureCacheMaxBytes: 1 << 26, sampleCacheShardBytes: SHARD, ...extra });

const pretrain = (output: string, preprocess?: JobSpec['dataset']['preprocess']): JobSpec => ({
  type: 'pretrain',
  model: { architecture: 'conv-classifier', options: { filters: [4], kernelSize: 3, inputShape: [12, 12, 3] } },
  dataset: { name: 'shades', validationSplit: 0.2, ...(preprocess ? { preprocess } : {}) },
  training: { epochs: 2, batchSize: 8, learningRate: 0.01, seed: 1 },
  output: { checkpoint: output },
});

beforeAll(async () => {
  dataDir = await makeTempDir();
  layout = new DataLayout(dataDir);
  await layout.ensure();
  await writeImageDataset(dataDir, 'shades', { train: 30, test: 10 });
  backend = await initBackend('auto');
});

afterAll(async () => {
  await fs.rm(dataDir, { recursive: true, force: true });
});

describe('scaling', () => {
  it('maps bytes as named: unit [0, 1], symmetric [-1, 1], imagenet mean/std, explicit mean/std', () => {
    expect(Array.from(scalingTables('unit', 1)[0].subarray(254, 256))).toEqual([Math.fround(254 / 255), 1]);
    const sym = scalingTables('symmetric', 3);
    expect([sym[0][0], sym[1][255]]).toEqual([-1, 1]);
    const net = scalingTables('imagenet', 3);
    expect(net[0][124]).toBeCloseTo((124 - 0.485 * 255) / (0.229 * 255), 5);
    expect(scalingTables({ mean: [10], std: [2] }, 3)[2][20]).toBe(5);
  });

  it('resize policies differ where they should: pad adds black borders, crop keeps the centre', async () => {
    // 20 wide × 10 high, left half black, right half white, into 10 × 10.
    const img = Buffer.alloc(20 * 10 * 3);
    for (let y = 0; y < 10; y++) for (let x = 10; x < 20; x++) img.fill(255, (y * 20 + x) * 3, (y * 20 + x + 1) * 3);
    const file = await sharp(img, { raw: { width: 20, height: 10, channels: 3 } }).png().toBuffer();
    const row = (v: Float32Array, y: number) => Array.from({ length: 10 }, (_, x) => Math.round(v[(y * 10 + x) * 3]));
    const pad = await preprocessImage(file, [10, 10, 3], { resize: 'pad', channels: 3, scaling: 'unit' });
    expect(row(pad, 0)).toEqual(new Array(10).fill(0)); // padding rows above the image
    const crop = await preprocessImage(file, [10, 10, 3], { resize: 'crop', channels: 3, scaling: 'unit' });
    expect(row(crop, 5)[0]).toBe(0);
    expect(row(crop, 5)[9]).toBe(1);
    const gray = await preprocessImage(file, [10, 10, 1], { resize: 'stretch', channels: 1, scaling: 'symmetric' });
    expect(gray).toHaveLength(100);
    expect(Math.min(...gray)).toBe(-1);
  });
});

describe('the recorded preprocessing', () => {
  it('is written to the manifest, used for evaluation without being repeated, and really matters', async () => {
    const { manifest, result } = await runJob(pretrain('sym', { scaling: 'symmetric' }), ctx('sym'));
    expect(manifest.preprocess).toEqual({ resize: 'stretch', channels: 3, scaling: 'symmetric' });
    const opts = { split: 'test' as const, shardBytes: SHARD };

    // No preprocessing given: the manifest's record is applied, reproducing the job's own test metrics.
    const recorded = await evaluateCheckpoint(layout, 'sym', 'shades', opts);
    expect(recorded.preprocess.scaling).toBe('symmetric');
    expect(recorded.metrics.loss).toBeCloseTo(result.metrics.test!.loss, 4);
    expect(recorded.metrics.accuracy).toBe(result.metrics.test!.accuracy);

    // Fed [0, 1] instead, the same network computes something else.
    const wrong = await evaluateCheckpoint(layout, 'sym', 'shades', { ...opts, override: { scaling: 'unit' } });
    expect(Math.abs(wrong.metrics.loss - recorded.metrics.loss)).toBeGreaterThan(1e-3);
  });

  it('a transfer job inherits the source checkpoint\'s record unless the spec overrides it', async () => {
    await runJob(pretrain('src-net', { scaling: 'imagenet', resize: 'crop' }), ctx('src'));
    const transfer = (output: string, preprocess?: JobSpec['dataset']['preprocess']): JobSpec => ({
      type: 'transfer',
      source: { checkpoint: 'src-net' },
      dataset: { name: 'shades', ...(preprocess ? { preprocess } : {}) },
      training: { epochs: 1, batchSize: 8, seed: 2 },
      output: { checkpoint: output },
    });
    const events: string[] = [];
    const inherited = await runJob(transfer('inherits'), ctx('inh', { onEvent: (m) => void events.push(m) }));
    expect(inherited.manifest.preprocess).toEqual({ resize: 'crop', channels: 3, scaling: 'imagenet' });
    expect(events.some((m) => /Preprocessing as the source checkpoint was trained: crop, 3 channels, imagenet scaling/.test(m))).toBe(true);
    const overridden = await runJob(transfer('overrides', { scaling: 'unit' }), ctx('ovr'));
    expect(overridden.manifest.preprocess).toEqual({ resize: 'crop', channels: 3, scaling: 'unit' });
  });

  it('a checkpoint without a record is read as stretch / its channels / unit', async () => {
    const { manifest } = await runJob(pretrain('plain'), ctx('plain'));
    expect(manifest.preprocess).toEqual({ resize: 'stretch', channels: 3, scaling: 'unit' });
    const file = path.join(layout.checkpointDir('plain'), 'manifest.json');
    const { preprocess: _dropped, ...older } = JSON.parse(await fs.readFile(file, 'utf8'));
    await fs.writeFile(file, JSON.stringify(older));
    const { preprocess } = await evaluateCheckpoint(layout, 'plain', 'shades', { split: 'test', shardBytes: SHARD });
    expect(preprocess).toEqual({ resize: 'stretch', channels: 3, scaling: 'unit' });
  });

  it('an uploaded checkpoint declares its preprocessing in the manifest.json it brings', async () => {
    await runJob(pretrain('to-upload'), ctx('up'));
    const staged = path.join(dataDir, 'upload-staging');
    await fs.cp(layout.checkpointDir('to-upload'), staged, { recursive: true });
    const file = path.join(staged, 'manifest.json');
    await fs.writeFile(file, JSON.stringify({ ...JSON.parse(await fs.readFile(file, 'utf8')), preprocess: { resize: 'pad', channels: 3, scaling: 'symmetric' } }));
    const manifest = await importCheckpoint(layout, 'uploaded', staged, 'upload-1');
    expect(manifest.preprocess).toEqual({ resize: 'pad', channels: 3, scaling: 'symmetric' });
    const { preprocess } = await evaluateCheckpoint(layout, 'uploaded', 'shades', { split: 'test', shardBytes: SHARD });
    expect(preprocess.scaling).toBe('symmetric');
  });

  it('channels that contradict the model are refused with the field to fix', async () => {
    await expect(runJob(pretrain('bad-ch', { channels: 1 }), ctx('badch'))).rejects.toMatchObject({ code: 'dataset_shape_mismatch', param: '/dataset/preprocess/channels' });
  });
});
