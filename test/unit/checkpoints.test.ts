import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ConflictError, GraftError, NotFoundError } from '../../src/errors';
import { CheckpointCatalog, type ManifestInput } from '../../src/storage/checkpoints';
import { DataLayout } from '../../src/storage/layout';
import { FileSystemIOHandler, loadModel, readCheckpoint, saveCheckpoint } from '../../workers/engine/checkpoint-io';

const SHARD_BYTES = 4 * 1024 * 1024;
const SHARD = 'group1-shard1of1.bin';
const INPUT: ManifestInput = {
  jobId: 'job-1',
  jobType: 'pretrain',
  task: 'reconstruction',
  inputShape: [6, 6, 1],
  backend: 'cpu',
  spec: { type: 'pretrain' },
  source: null,
  frozen: ['enc_conv1'],
  metrics: { validation: { loss: 0.25 } },
  history: [{ epoch: 1, loss: 0.5, valLoss: null }],
};

let root: string;
let layoutCount = 0;

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'graft-checkpoints-'));
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** A private DATA_DIR per test, so list() and .tmp checks see only that test's checkpoints. */
async function freshLayout(): Promise<DataLayout> {
  const layout = new DataLayout(path.join(root, `data-${++layoutCount}`));
  await layout.ensure();
  return layout;
}

/** Conv encoder + dense head, with a frozen conv and a BatchNorm (non-trainable moving statistics). */
function sequentialModel(): tf.Sequential {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ name: 'enc_conv1', inputShape: [6, 6, 1], filters: 2, kernelSize: 3, activation: 'relu' }),
      tf.layers.batchNormalization({ name: 'enc_bn' }),
      tf.layers.flatten({ name: 'enc_flatten' }),
      tf.layers.dense({ name: 'fc', units: 3, activation: 'softmax' }),
    ],
  });
  model.getLayer('enc_conv1').trainable = false;
  return model;
}

/** Functional model with a nested Sequential, whose weights are named after the inner layer. */
function functionalModel(): tf.LayersModel {
  const input = tf.input({ name: 'inp', shape: [5] });
  const inner = tf.sequential({ name: 'inner', layers: [tf.layers.dense({ name: 'd1', inputShape: [5], units: 4, activation: 'tanh' })] });
  const hidden = inner.apply(input) as tf.SymbolicTensor;
  const skip = tf.layers.dense({ name: 'skip', units: 4 }).apply(input) as tf.SymbolicTensor;
  const merged = tf.layers.add({ name: 'merge' }).apply([hidden, skip]) as tf.SymbolicTensor;
  const output = tf.layers.dense({ name: 'head', units: 2 }).apply(merged) as tf.SymbolicTensor;
  return tf.model({ name: 'func', inputs: input, outputs: output });
}

function predict(model: tf.LayersModel, x: tf.Tensor): number[] {
  return tf.tidy(() => Array.from((model.predict(x) as tf.Tensor).dataSync()));
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

async function caught(p: Promise<unknown>): Promise<GraftError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(GraftError);
  return err as GraftError;
}

async function expectCorrupt(dir: string, mentions: RegExp): Promise<void> {
  for (const attempt of [readCheckpoint, loadModel]) {
    const err = await caught(attempt(dir));
    expect(err).toMatchObject({ code: 'checkpoint_corrupt', statusCode: 422, param: '/source/checkpoint' });
    expect(err.message).toMatch(mentions);
  }
}

async function copyCheckpoint(layout: DataLayout, from: string, to: string): Promise<string> {
  const dir = layout.checkpointDir(to);
  await fs.cp(layout.checkpointDir(from), dir, { recursive: true });
  return dir;
}

async function expectNoStagingLeft(layout: DataLayout): Promise<void> {
  expect(await fs.readdir(layout.tmpDir)).toEqual([]);
}

describe('saveCheckpoint', () => {
  it('writes model.json, the shard and a manifest with the hash and size of each file', async () => {
    const layout = await freshLayout();
    const model = sequentialModel();
    const manifest = await saveCheckpoint(layout, 'cae', model, INPUT);
    const dir = layout.checkpointDir('cae');

    expect((await fs.readdir(dir)).sort()).toEqual(['manifest.json', 'model.json', SHARD].sort());
    const onDisk = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8'));
    expect(onDisk).toEqual(manifest);
    expect(Object.keys(manifest.files).sort()).toEqual([SHARD, 'model.json']);
    for (const [file, entry] of Object.entries(manifest.files)) {
      const bytes = await fs.readFile(path.join(dir, file));
      expect(entry).toEqual({ sha256: sha256(bytes), bytes: bytes.length });
    }

    expect(manifest).toMatchObject({ ...INPUT, formatVersion: 1, name: 'cae' });
    expect(new Date(manifest.createdAt).toISOString()).toBe(manifest.createdAt);
    expect(manifest.layers).toEqual([
      { name: 'enc_conv1', className: 'Conv2D', outputShape: [null, 4, 4, 2], params: 20, trainable: false, weights: [{ name: 'enc_conv1/kernel', shape: [3, 3, 1, 2] }, { name: 'enc_conv1/bias', shape: [2] }] },
      {
        name: 'enc_bn',
        className: 'BatchNormalization',
        outputShape: [null, 4, 4, 2],
        params: 8,
        trainable: true,
        weights: [
          { name: 'enc_bn/gamma', shape: [2] },
          { name: 'enc_bn/beta', shape: [2] },
          { name: 'enc_bn/moving_mean', shape: [2] },
          { name: 'enc_bn/moving_variance', shape: [2] },
        ],
      },
      { name: 'enc_flatten', className: 'Flatten', outputShape: [null, 32], params: 0, trainable: true, weights: [] },
      { name: 'fc', className: 'Dense', outputShape: [null, 3], params: 99, trainable: true, weights: [{ name: 'fc/kernel', shape: [32, 3] }, { name: 'fc/bias', shape: [3] }] },
    ]);

    const modelJson = JSON.parse(await fs.readFile(path.join(dir, 'model.json'), 'utf8'));
    expect(modelJson).toMatchObject({ format: 'layers-model', convertedBy: null, weightsManifest: [{ paths: [SHARD] }] });
    expect(modelJson.generatedBy).toMatch(/^TensorFlow\.js tfjs-layers v/);
    expect(modelJson.modelTopology.class_name).toBe('Sequential');
    await expectNoStagingLeft(layout);
  });

  it('round-trips: loadModel predicts exactly like the original, readCheckpoint returns every weight', async () => {
    const layout = await freshLayout();
    const model = sequentialModel();
    await saveCheckpoint(layout, 'cae', model, INPUT);
    const dir = layout.checkpointDir('cae');

    const x = tf.randomUniform([3, 6, 6, 1], 0, 1, 'float32', 7);
    const loaded = await loadModel(dir);
    expect(predict(loaded, x)).toEqual(predict(model, x));
    expect(loaded.getLayer('enc_conv1').trainable).toBe(false);

    const { weights, modelTopology, manifest } = await readCheckpoint(dir);
    expect(manifest?.jobId).toBe('job-1');
    expect((modelTopology as { class_name: string }).class_name).toBe('Sequential');
    const expected = model.layers.flatMap((l) => l.weights);
    // model.json lists trainable weights first (tfjs's order), so compare as sets.
    expect([...weights.keys()].sort()).toEqual(expected.map((w) => w.originalName).sort());
    for (const w of expected) {
      const got = weights.get(w.originalName)!;
      expect(got.shape).toEqual(w.shape);
      expect(got.dtype).toBe('float32');
      expect(got.values).toBeInstanceOf(Float32Array);
      expect(Array.from(got.values)).toEqual(Array.from(w.read().dataSync()));
    }
    x.dispose();
    loaded.dispose();
  });

  it('splits weights over 4 MB shards, even inside one weight, and reads them back', async () => {
    const layout = await freshLayout();
    const model = tf.sequential({ layers: [tf.layers.dense({ name: 'big', inputShape: [1025], units: 1024 })] });
    const manifest = await saveCheckpoint(layout, 'big', model, { jobId: 'job-2', jobType: 'upload' });
    const dir = layout.checkpointDir('big');

    const shards = Object.keys(manifest.files).filter((f) => f.endsWith('.bin')).sort();
    expect(shards).toEqual(['group1-shard1of2.bin', 'group1-shard2of2.bin']);
    expect(manifest.files['group1-shard1of2.bin'].bytes).toBe(SHARD_BYTES);
    expect(manifest.files['group1-shard2of2.bin'].bytes).toBe((1025 * 1024 + 1024) * 4 - SHARD_BYTES);

    const { weights } = await readCheckpoint(dir);
    expect(Array.from(weights.get('big/kernel')!.values)).toEqual(Array.from(model.getLayer('big').getWeights()[0].dataSync()));
    const x = tf.ones([1, 1025]);
    expect(predict(await loadModel(dir), x)).toEqual(predict(model, x));
    x.dispose();
  });

  it('refuses a second save under the same name and leaves the first untouched', async () => {
    const layout = await freshLayout();
    await saveCheckpoint(layout, 'cae', sequentialModel(), INPUT);
    const dir = layout.checkpointDir('cae');
    const before = await Promise.all(['model.json', SHARD, 'manifest.json'].map((f) => fs.readFile(path.join(dir, f))));

    const err = await caught(saveCheckpoint(layout, 'cae', sequentialModel(), { ...INPUT, jobId: 'job-9' }));
    expect(err).toBeInstanceOf(ConflictError);
    expect(err.code).toBe('checkpoint_exists');

    const after = await Promise.all(['model.json', SHARD, 'manifest.json'].map((f) => fs.readFile(path.join(dir, f))));
    expect(after).toEqual(before);
    expect((await readCheckpoint(dir)).manifest?.jobId).toBe('job-1');
    await expectNoStagingLeft(layout);
  });

  it('leaves no folder when the save fails half-way', async () => {
    const layout = await freshLayout();
    const model = sequentialModel();
    jest.spyOn(model, 'save').mockImplementationOnce(async (handler) => {
      // A shard gets written, then the disk fills up.
      await fs.writeFile(path.join((handler as FileSystemIOHandler).dir, SHARD), Buffer.alloc(16));
      throw new Error('ENOSPC: no space left on device');
    });
    await expect(saveCheckpoint(layout, 'cae', model, INPUT)).rejects.toThrow('ENOSPC');
    await expect(fs.stat(layout.checkpointDir('cae'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expectNoStagingLeft(layout);
  });

  it('leaves no folder when the manifest would not be readable, and names the bad field', async () => {
    const layout = await freshLayout();
    const input = { ...INPUT, history: [{ epoch: 'one' }] } as unknown as ManifestInput;
    await expect(saveCheckpoint(layout, 'cae', sequentialModel(), input)).rejects.toThrow('/history/0/epoch');
    expect(await new CheckpointCatalog(layout).exists('cae')).toBe(false);
    await expectNoStagingLeft(layout);
  });
});

describe('reading a damaged checkpoint gives checkpoint_corrupt', () => {
  let layout: DataLayout;
  beforeAll(async () => {
    layout = await freshLayout();
    await saveCheckpoint(layout, 'good', sequentialModel(), INPUT);
  });

  async function damaged(name: string, opts: { withoutManifest?: boolean } = {}): Promise<string> {
    const dir = await copyCheckpoint(layout, 'good', name);
    if (opts.withoutManifest) await fs.rm(path.join(dir, 'manifest.json'));
    return dir;
  }

  it('a flipped byte in a shard fails its sha256', async () => {
    const dir = await damaged('flipped');
    const bytes = await fs.readFile(path.join(dir, SHARD));
    bytes[10] ^= 0xff;
    await fs.writeFile(path.join(dir, SHARD), bytes);
    await expectCorrupt(dir, new RegExp(`"flipped" is corrupt: ${SHARD} has sha256 [0-9a-f]{64} but manifest.json says`));
  });

  it('a truncated shard', async () => {
    const dir = await damaged('truncated');
    await fs.truncate(path.join(dir, SHARD), 100);
    await expectCorrupt(dir, new RegExp(`${SHARD} is 100 bytes but manifest.json says \\d+`));
  });

  it('a truncated shard without manifest fails the weight specs', async () => {
    const dir = await damaged('truncated-bare', { withoutManifest: true });
    await fs.truncate(path.join(dir, SHARD), 100);
    await expectCorrupt(dir, new RegExp(`weight group 1: ${SHARD} hold 100 bytes but its 8 weights need 508 \\(truncated\\)`));
  });

  it('a shard with trailing bytes without manifest', async () => {
    const dir = await damaged('padded-bare', { withoutManifest: true });
    await fs.appendFile(path.join(dir, SHARD), Buffer.alloc(8));
    await expectCorrupt(dir, /hold 516 bytes but its 8 weights need 508 \(8 bytes too long\)/);
  });

  it('a deleted shard, with and without manifest', async () => {
    for (const withoutManifest of [false, true]) {
      const dir = await damaged(`deleted-${withoutManifest}`, { withoutManifest });
      await fs.rm(path.join(dir, SHARD));
      await expectCorrupt(dir, new RegExp(`${SHARD} is missing`));
    }
  });

  it('a garbled model.json, with and without manifest', async () => {
    const dir = await damaged('garbled');
    await fs.writeFile(path.join(dir, 'model.json'), '{"modelTopology": {"class_name": "Seq');
    await expectCorrupt(dir, /model\.json is \d+ bytes but manifest\.json says/);

    const bare = await damaged('garbled-bare', { withoutManifest: true });
    await fs.writeFile(path.join(bare, 'model.json'), '{"modelTopology": {"class_name": "Seq');
    await expectCorrupt(bare, /model\.json is not valid JSON/);
  });

  it('a garbled manifest.json', async () => {
    const dir = await damaged('bad-manifest');
    await fs.writeFile(path.join(dir, 'manifest.json'), '[1, 2');
    await expectCorrupt(dir, /manifest\.json is not valid JSON/);
    await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify({ formatVersion: 1, files: {} }));
    await expectCorrupt(dir, /manifest\.json is not a graft manifest at \//);
  });

  it('a model.json that names files outside the folder, or a topology tfjs cannot build', async () => {
    const escape = await damaged('escape', { withoutManifest: true });
    const json = JSON.parse(await fs.readFile(path.join(escape, 'model.json'), 'utf8'));
    await fs.writeFile(path.join(escape, 'model.json'), JSON.stringify({ ...json, weightsManifest: [{ ...json.weightsManifest[0], paths: ['../good/' + SHARD] }] }));
    await expectCorrupt(escape, /names the weight file "\.\.\/good\/group1-shard1of1\.bin"/);

    const unbuildable = await damaged('unbuildable', { withoutManifest: true });
    json.modelTopology.config.layers[0].class_name = 'NoSuchLayer';
    await fs.writeFile(path.join(unbuildable, 'model.json'), JSON.stringify(json));
    const err = await caught(loadModel(unbuildable));
    expect(err).toMatchObject({ code: 'checkpoint_corrupt', param: '/source/checkpoint' });
    expect(err.message).toMatch(/model\.json does not describe a model TensorFlow\.js can load .*NoSuchLayer/);
  });

  it('an unlisted model file cannot sneak past the manifest', async () => {
    const dir = await damaged('unlisted');
    const manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8'));
    delete manifest.files[SHARD];
    await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    await expectCorrupt(dir, new RegExp(`${SHARD} is not listed in manifest.json`));
  });

  it('a missing folder is checkpoint_not_found', async () => {
    for (const attempt of [readCheckpoint, loadModel]) {
      const err = await caught(attempt(layout.checkpointDir('absent')));
      expect(err).toBeInstanceOf(NotFoundError);
      expect(err).toMatchObject({ code: 'checkpoint_not_found', statusCode: 404 });
    }
  });
});

describe('readCheckpoint decodes quantized and int32 weights', () => {
  it('dequantizes uint8, uint16 and float16 with tfjs and releases the tensors', async () => {
    const dir = path.join(root, 'quantized');
    await fs.mkdir(dir);
    const shard = Buffer.concat([
      Buffer.from([0, 1, 2, 3]), // uint8: v * 0.5 - 1
      Buffer.from(new Uint16Array([0, 4]).buffer), // uint16: v * 0.25 + 10
      Buffer.from(new Uint16Array([0x3c00, 0xc000]).buffer), // float16: 1, -2
      Buffer.from(new Int32Array([7, -7]).buffer),
    ]);
    await fs.writeFile(path.join(dir, 'w.bin'), shard);
    const weights = [
      { name: 'q/a', shape: [2, 2], dtype: 'float32', quantization: { dtype: 'uint8', min: -1, scale: 0.5 } },
      { name: 'q/b', shape: [2], dtype: 'float32', quantization: { dtype: 'uint16', min: 10, scale: 0.25 } },
      { name: 'q/c', shape: [2], dtype: 'float32', quantization: { dtype: 'float16' } },
      { name: 'q/d', shape: [2], dtype: 'int32' },
    ];
    await fs.writeFile(path.join(dir, 'model.json'), JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['w.bin'], weights }] }));

    const tensorsBefore = tf.memory().numTensors;
    const { weights: got, manifest } = await readCheckpoint(dir);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(manifest).toBeNull();
    expect(Array.from(got.get('q/a')!.values)).toEqual([-1, -0.5, 0, 0.5]);
    expect(got.get('q/a')!.shape).toEqual([2, 2]);
    expect(Array.from(got.get('q/b')!.values)).toEqual([10, 11]);
    expect(Array.from(got.get('q/c')!.values)).toEqual([1, -2]);
    expect(got.get('q/d')).toEqual({ shape: [2], dtype: 'int32', values: new Int32Array([7, -7]) });
  });

  it('refuses dtypes a layers model cannot hold', async () => {
    const dir = path.join(root, 'strings');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'model.json'), JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: [], weights: [{ name: 's/x', shape: [1], dtype: 'string' }] }] }));
    const err = await caught(readCheckpoint(dir));
    expect(err.code).toBe('checkpoint_corrupt');
    expect(err.message).toMatch(/model\.json is not a TensorFlow\.js layers model at \/weightsManifest\/0\/weights\/0\/dtype: .*float32, int32/);
  });
});

describe('CheckpointCatalog', () => {
  it('remove() takes a checkpoint away in one rename and leaves nothing in .tmp; a second remove is checkpoint_not_found', async () => {
    const layout = await freshLayout();
    const catalog = new CheckpointCatalog(layout);
    await saveCheckpoint(layout, 'old', sequentialModel(), INPUT);
    expect(await catalog.exists('old')).toBe(true);
    await catalog.remove('old');
    expect(await catalog.exists('old')).toBe(false);
    expect(await fs.readdir(layout.tmpDir)).toEqual([]);
    await expect(catalog.remove('old')).rejects.toMatchObject({ code: 'checkpoint_not_found', statusCode: 404 });
  });

  it('describes a checkpoint from its manifest, and the same layers from model.json alone', async () => {
    const layout = await freshLayout();
    const catalog = new CheckpointCatalog(layout);
    const manifest = await saveCheckpoint(layout, 'cae', sequentialModel(), INPUT);
    await copyCheckpoint(layout, 'cae', 'cae-bare');
    await fs.rm(path.join(layout.checkpointDir('cae-bare'), 'manifest.json'));

    const full = await catalog.describe('cae');
    expect(full).toMatchObject({ name: 'cae', createdAt: manifest.createdAt, inputShape: [6, 6, 1], layers: manifest.layers, manifest });
    const sizes = Object.values(manifest.files).reduce((s, f) => s + f.bytes, 0);
    expect(full.sizeBytes).toBe(sizes + (await fs.stat(path.join(layout.checkpointDir('cae'), 'manifest.json'))).size);

    const bare = await catalog.describe('cae-bare');
    expect(bare).toMatchObject({ name: 'cae-bare', inputShape: [6, 6, 1], manifest: null, sizeBytes: sizes });
    expect(bare.layers).toEqual(manifest.layers.map((l) => ({ ...l, outputShape: null })));

    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    expect((await catalog.weightNames('cae-bare')).sort(byName)).toEqual(manifest.layers.flatMap((l) => l.weights).sort(byName));
  });

  it('derives a functional topology (InputLayer, nested model, merge) like the live model does', async () => {
    const layout = await freshLayout();
    const catalog = new CheckpointCatalog(layout);
    const model = functionalModel();
    const manifest = await saveCheckpoint(layout, 'func', model, { jobId: 'job-3', jobType: 'transfer', task: 'classification', labels: ['a', 'b'] });
    expect(manifest.layers.map((l) => [l.name, l.className])).toEqual([
      ['inp', 'InputLayer'],
      ['inner', 'Sequential'],
      ['skip', 'Dense'],
      ['merge', 'Add'],
      ['head', 'Dense'],
    ]);
    expect(manifest.layers[1].weights.map((w) => w.name)).toEqual(['d1/kernel', 'd1/bias']);

    await copyCheckpoint(layout, 'func', 'func-bare');
    await fs.rm(path.join(layout.checkpointDir('func-bare'), 'manifest.json'));
    const bare = await catalog.describe('func-bare');
    expect(bare.layers).toEqual(manifest.layers.map((l) => ({ ...l, outputShape: null })));
    expect(bare.inputShape).toEqual([5]);

    const x = tf.randomNormal([2, 5], 0, 1, 'float32', 3);
    expect(predict(await loadModel(layout.checkpointDir('func-bare')), x)).toEqual(predict(model, x));
    x.dispose();
  });

  it('lists checkpoints by name, still listing (with nulls) one whose metadata is unreadable', async () => {
    const layout = await freshLayout();
    const catalog = new CheckpointCatalog(layout);
    expect(await catalog.list()).toEqual([]);
    const cae = await saveCheckpoint(layout, 'cae', sequentialModel(), INPUT);
    await saveCheckpoint(layout, 'another', functionalModel(), { jobId: 'job-3', jobType: 'transfer' });
    await copyCheckpoint(layout, 'cae', 'broken');
    await fs.writeFile(path.join(layout.checkpointDir('broken'), 'manifest.json'), 'not json');
    await fs.writeFile(path.join(layout.checkpointsDir, 'stray-file.txt'), 'not a checkpoint');

    const list = await catalog.list();
    expect(list.map((c) => c.name)).toEqual(['another', 'broken', 'cae']);
    expect(list[2]).toEqual({
      name: 'cae',
      tenant: 'default',
      createdAt: cae.createdAt,
      jobId: 'job-1',
      task: 'reconstruction',
      params: 127,
      inputShape: [6, 6, 1],
      sizeBytes: (await catalog.describe('cae')).sizeBytes,
    });
    expect(list[0]).toMatchObject({ jobId: 'job-3', task: null, params: 24 + 24 + 10, inputShape: null });
    expect(list[1]).toMatchObject({ name: 'broken', jobId: null, task: null, params: null, inputShape: null });
    expect(list[1].sizeBytes).toBeGreaterThan(0);

    const err = await caught(catalog.describe('broken'));
    expect(err).toMatchObject({ code: 'checkpoint_corrupt', statusCode: 422, param: null });
  });

  it('answers exists and reports unknown names as checkpoint_not_found', async () => {
    const layout = await freshLayout();
    const catalog = new CheckpointCatalog(layout);
    await saveCheckpoint(layout, 'cae', sequentialModel(), INPUT);
    expect(await catalog.exists('cae')).toBe(true);
    expect(await catalog.exists('nope')).toBe(false);
    expect(await catalog.exists('../data-1')).toBe(false);
    for (const name of ['nope', '../cae']) {
      for (const attempt of [() => catalog.describe(name), () => catalog.weightNames(name)]) {
        const err = await caught(attempt());
        expect(err).toBeInstanceOf(NotFoundError);
        expect(err).toMatchObject({ code: 'checkpoint_not_found', param: null });
      }
    }
  });
});
