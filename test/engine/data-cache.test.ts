import { promises as fs } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { JobSpec } from '../../src/spec/schema';
import { CACHE_DIR, DatasetCatalog, loadDataset, openSamples } from '../../src/storage/datasets';
import { DataLayout } from '../../src/storage/layout';
import { initBackend } from '../../workers/engine/backend';
import { readCheckpoint } from '../../workers/engine/checkpoint-io';
import { runJob } from '../../workers/engine/run-job';
import { makeTempDir } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';
import { writeImageDataset } from '../helpers/images';

/**
 * The on-volume sample cache, streaming batches and the spilling feature cache (issue 13).
 */
jest.setTimeout(180_000);

let dataDir: string;
let layout: DataLayout;
let backend: Awaited<ReturnType<typeof initBackend>>;
const SHARD = 4 * 12 * 12 * 3; // four samples per shard: several shards even for a small dataset
const open = (name: string) => openSamples(layout, name, { split: 'train', inputShape: [12, 12, 3], resize: 'stretch', shardBytes: SHARD });
const ctx = (jobId: string, extra: Partial<Parameters<typeof runJob>[1]> = {}) => ({ jobId, layout, backend, featureCacheMaxBytes: 1 << 26, sampleCacheShardBytes: SHARD, ...extra });
const cacheEntries = async (name: string) => (await fs.readdir(path.join(layout.datasetDir(name), CACHE_DIR)).catch(() => [] as string[])).sort();

beforeAll(async () => {
  dataDir = await makeTempDir();
  layout = new DataLayout(dataDir);
  await layout.ensure();
  backend = await initBackend('auto');
});

afterAll(async () => {
  await fs.rm(dataDir, { recursive: true, force: true });
});

describe('sample cache', () => {
  it('decodes once into shards that hold exactly the pixels a direct decode gives; later opens hit it', async () => {
    await writeImageDataset(dataDir, 'a', { train: 9 });
    const direct = await loadDataset(layout, 'a', { split: 'train', inputShape: [12, 12, 3] });
    const first = await open('a');
    expect(first.origin.source).toBe('cache-built');
    const files = await fs.readdir(first.origin.dir!);
    expect(files.filter((f) => f.endsWith('.u8'))).toHaveLength(5); // 18 samples, 4 per shard
    const all = Int32Array.from({ length: 18 }, (_, i) => 17 - i);
    const bytes = new Uint8Array(18 * 432);
    await first.store.read(all, bytes);
    for (let k = 0; k < 18; k++) {
      const i = all[k];
      for (let p = 0; p < 432; p += 37) expect(bytes[k * 432 + p] / 255).toBeCloseTo(direct.images[i * 432 + p], 6);
    }
    expect(Array.from(first.store.labels)).toEqual(Array.from(direct.labels));
    await first.store.close();
    await first.store.close(); // idempotent

    const again = await open('a');
    expect(again.origin).toMatchObject({ source: 'cache-hit', decodeSeconds: 0, dir: first.origin.dir });
    await again.store.close();
  });

  it('concurrent first jobs are safe: both read a complete cache, one copy survives, no staging left', async () => {
    await writeImageDataset(dataDir, 'b', { train: 10 });
    const [x, y] = await Promise.all([open('b'), open('b')]);
    expect([x.origin.source, y.origin.source]).toContain('cache-built');
    const row = new Int32Array([3]);
    const bx = new Uint8Array(432);
    const by = new Uint8Array(432);
    await Promise.all([x.store.read(row, bx), y.store.read(row, by)]);
    expect(Buffer.from(bx).equals(Buffer.from(by))).toBe(true);
    await Promise.all([x.store.close(), y.store.close()]);
    expect(await cacheEntries('b')).toHaveLength(1);
  });

  it('is invalidated when the dataset changes (the stale copy is removed), counted in its size, and removed with it', async () => {
    await writeImageDataset(dataDir, 'c', { train: 6 });
    const catalog = new DatasetCatalog(layout);
    const before = (await catalog.describe('c')).sizeBytes;
    const first = await open('c');
    await first.store.close();
    expect((await catalog.describe('c')).sizeBytes).toBeGreaterThanOrEqual(before + 12 * 432);

    const extra = Buffer.alloc(432, 200);
    await sharp(extra, { raw: { width: 12, height: 12, channels: 3 } }).png().toFile(path.join(layout.datasetDir('c'), 'train', 'light', 'z-new.png'));
    const second = await open('c');
    expect(second.origin.source).toBe('cache-built');
    expect(second.store.count).toBe(13);
    await second.store.close();
    expect(await cacheEntries('c')).toEqual([path.basename(second.origin.dir!)]);

    await catalog.remove('c');
    await expect(fs.stat(second.origin.dir!)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('IDX data, already stored as pixels, is read into memory as uint8 and not cached on disk', async () => {
    await writeMnistDataset(dataDir, 'digits', { train: 50, test: 10 });
    const { origin, store } = await openSamples(layout, 'digits', { split: 'train', inputShape: null, resize: 'stretch', shardBytes: SHARD });
    expect(origin).toMatchObject({ source: 'memory', dir: null });
    expect(store.count).toBe(50);
    await store.close();
    expect(await cacheEntries('digits')).toEqual([]);
  });
});

describe('streaming jobs', () => {
  const spec = (output: string, over: Partial<JobSpec> = {}): JobSpec => ({
    type: 'pretrain',
    model: { architecture: 'conv-classifier', options: { filters: [4], kernelSize: 3, units: 8, inputShape: [12, 12, 3] } },
    dataset: { name: 'jobs', validationSplit: 0.2 },
    training: { epochs: 6, batchSize: 8, learningRate: 0.01, seed: 4 },
    output: { checkpoint: output },
    ...over,
  });

  beforeAll(async () => {
    await writeImageDataset(dataDir, 'jobs', { train: 40, test: 10 });
  });

  it('train from the cache, learn the task, and give the same weights with or without prefetch', async () => {
    const events: string[] = [];
    const a = await runJob(spec('s-a'), ctx('sa', { onEvent: (m) => void events.push(m) }));
    expect(events.some((m) => /Decoded the train split once into the sample cache \(80 images/.test(m))).toBe(true);
    expect(a.result.metrics.test!.accuracy).toBeGreaterThan(0.8);
    const later: string[] = [];
    await runJob(spec('s-b'), ctx('sb', { prefetchBatches: 0, onEvent: (m) => void later.push(m) }));
    expect(later.some((m) => /Decoded the train split/.test(m))).toBe(false); // read from the cache
    const wa = (await readCheckpoint(layout.checkpointDir('s-a'))).weights;
    const wb = (await readCheckpoint(layout.checkpointDir('s-b'))).weights;
    for (const [name, w] of wa) expect(Buffer.from(Float32Array.from(w.values).buffer).equals(Buffer.from(Float32Array.from(wb.get(name)!.values).buffer))).toBe(true);
  });

  it('a feature cache above FEATURE_CACHE_MAX_MB spills to the job folder, trains the same, and is deleted after', async () => {
    const transfer = (output: string): JobSpec => ({
      type: 'transfer',
      source: { checkpoint: 's-a' },
      freeze: '^enc_conv',
      model: { cut: 'enc_flatten', head: [{ type: 'dense', units: 2, activation: 'softmax', name: 'out' }] },
      dataset: { name: 'jobs', validationSplit: 0.2 },
      training: { epochs: 2, batchSize: 8, seed: 9 },
      output: { checkpoint: output },
    });
    const fix = (s: JobSpec) => s;

    const memory = await runJob(fix(transfer('f-mem')), ctx('fmem'));
    expect(memory.manifest.metrics!.training).toMatchObject({ featureCache: true, featureCacheMode: 'memory' });
    const seen: string[] = [];
    const spilled = await runJob(fix(transfer('f-disk')), ctx('fdisk', {
      featureCacheMaxBytes: 1,
      featureCacheDiskMaxBytes: 1 << 26,
      onProgress: async (p) => {
        if (p.phase === 'training') seen.push(...(await fs.readdir(path.join(dataDir, 'jobs', 'fdisk', 'features')).catch(() => [])));
      },
    }));
    expect(spilled.manifest.metrics!.training).toMatchObject({ featureCache: true, featureCacheMode: 'disk' });
    expect(new Set(seen)).toEqual(new Set(['features-train.f32', 'features-val.f32']));
    expect(await fs.readdir(path.join(dataDir, 'jobs', 'fdisk', 'features'))).toEqual([]);
    expect(spilled.result.metrics.test!.loss).toBeCloseTo(memory.result.metrics.test!.loss, 5);

    const off = await runJob(fix(transfer('f-off')), ctx('foff', { featureCacheMaxBytes: 1, featureCacheDiskMaxBytes: 0 }));
    expect(off.manifest.metrics!.training).toMatchObject({ featureCache: false, featureCacheMode: null });
  });
});
