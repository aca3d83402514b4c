import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { Value } from 'typebox/value';
import { GraftError } from '../../src/errors';
import { DatasetDescriptionSchema, DatasetSummarySchema } from '../../src/api/schemas/datasets';
import { DatasetCatalog } from '../../src/storage/datasets';
import { encodeIdx, parseIdx, readIdxFile, readIdxHeader, writeIdxFile } from '../../src/storage/idx';
import { DataLayout } from '../../src/storage/layout';
import { loadDataset } from '../../workers/engine/data';
import { Random, shuffleInPlace, stratifiedSplit } from '../../workers/engine/data/random';
import { writeMnistIdx } from '../../scripts/mnist-idx';

let root: string;
let count = 0;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'graft-datasets-'));
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** A private DATA_DIR per test, so list() sees only that test's datasets. */
async function freshLayout(): Promise<DataLayout> {
  const layout = new DataLayout(path.join(root, `data-${++count}`));
  await layout.ensure();
  return layout;
}

async function datasetDir(layout: DataLayout, name: string): Promise<string> {
  const dir = layout.datasetDir(name);
  await fs.mkdir(dir, { recursive: true });
  return dir;
}

/** Rejects with a GraftError carrying `code` (and returns it for further checks). */
async function expectGraftError(p: Promise<unknown>, code: string): Promise<GraftError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GraftError);
  expect((err as GraftError).code).toBe(code);
  return err as GraftError;
}

const bytes = (n: number, f: (i: number) => number) => Uint8Array.from({ length: n }, (_, i) => f(i));

/** A synthetic IDX split: n images of rows×cols (× channels), pixel i = (i * 7 + k) % 256, labels i % classes. */
async function writeIdxSplit(dir: string, prefix: string, n: number, dims: number[], classes: number, gzip = false): Promise<Uint8Array> {
  const size = dims.reduce((a, b) => a * b, 1);
  const ext = dims.length === 3 ? 'idx4' : 'idx3';
  const images = bytes(n * size, (i) => (i * 7) % 256);
  const suffix = gzip ? '.gz' : '';
  await writeIdxFile(path.join(dir, `${prefix}-images-${ext}-ubyte${suffix}`), { dims: [n, ...dims], data: images }, { gzip });
  await writeIdxFile(path.join(dir, `${prefix}-labels-idx1-ubyte${suffix}`), { dims: [n], data: bytes(n, (i) => i % classes) }, { gzip });
  return images;
}

type Rgb = [number, number, number];

async function writeImage(file: string, opts: { width: number; height: number; color: Rgb; alpha?: boolean; grey?: boolean }): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const [r, g, b] = opts.color;
  let img = sharp({ create: { width: opts.width, height: opts.height, channels: opts.alpha ? 4 : 3, background: { r, g, b, alpha: opts.alpha ? 0.5 : 1 } } });
  if (opts.grey) img = img.toColourspace('b-w');
  await (file.endsWith('.png') ? img.png() : img.jpeg({ quality: 100 })).toFile(file);
}

// -----------------------------------------------------------------------------------------------
describe('IDX files', () => {
  const arr = { dims: [3, 4, 5], data: bytes(60, (i) => (i * 37) % 256) };

  test.each([false, true])('round trip (gzip=%s), compression detected from content not name', async (gzip) => {
    const dir = await fs.mkdtemp(path.join(root, 'idx-'));
    // The name deliberately lies about compression: detection is by magic bytes.
    const file = path.join(dir, gzip ? 'images-idx3-ubyte' : 'images-idx3-ubyte.gz');
    await writeIdxFile(file, arr, { gzip });
    const onDisk = await fs.readFile(file);
    expect(onDisk[0] === 0x1f && onDisk[1] === 0x8b).toBe(gzip);

    const back = await readIdxFile(file);
    expect(back.dims).toEqual(arr.dims);
    expect(Buffer.from(back.data).equals(Buffer.from(arr.data))).toBe(true);
    expect(await readIdxHeader(file)).toEqual({ dims: arr.dims, headerBytes: 4 + 3 * 4 });

    // Same input, same bytes (gzip included): datasets written twice are identical.
    await writeIdxFile(`${file}.again`, arr, { gzip });
    expect((await fs.readFile(`${file}.again`)).equals(onDisk)).toBe(true);
  });

  test('encodes the standard header: 00 00 08 ndims, big-endian dims', () => {
    const out = encodeIdx({ dims: [2, 1], data: bytes(2, () => 9) });
    expect([...out]).toEqual([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 1, 9, 9]);
    expect(() => encodeIdx({ dims: [3], data: bytes(2, () => 0) })).toThrow(RangeError);
  });

  const good = encodeIdx(arr);
  const cases: [string, Uint8Array, string][] = [
    ['preamble cut off', good.subarray(0, 3), 'truncated'],
    ['dimensions cut off', good.subarray(0, 9), 'truncated'],
    ['data cut off', good.subarray(0, good.length - 1), 'size_mismatch'],
    ['trailing bytes', Buffer.concat([good, Buffer.from([1])]), 'size_mismatch'],
    ['bad magic', Buffer.concat([Buffer.from([0x50, 0x4b]), good.subarray(2)]), 'bad_magic'],
    ['float data type', Buffer.concat([Buffer.from([0, 0, 0x0d]), good.subarray(3)]), 'unsupported_type'],
    ['gzip cut off', zlib.gzipSync(good).subarray(0, 20), 'truncated'],
    ['gzip corrupt', Buffer.concat([zlib.gzipSync(good).subarray(0, 10), Buffer.alloc(30, 0xff)]), 'corrupt_gzip'],
  ];

  test.each(cases)('rejects %s with dataset_invalid', async (_what, data, reason) => {
    const err = await expectGraftError(parseIdx(data, 'x-idx3-ubyte'), 'dataset_invalid');
    expect(err.statusCode).toBe(422);
    expect(err.details).toEqual({ reason, file: 'x-idx3-ubyte' });
    expect(err.message).toMatch(/^x-idx3-ubyte: /);
  });

  test('size mismatch message names the dimensions and both byte counts', async () => {
    const err = await expectGraftError(parseIdx(good.subarray(0, good.length - 10)), 'dataset_invalid');
    expect(err.message).toContain('[3, 4, 5] need 60 data bytes but the file holds 50 (the file is truncated)');
  });

  test('readIdxHeader checks a raw file\'s size and reads only the start of a gzip file', async () => {
    const dir = await fs.mkdtemp(path.join(root, 'idx-'));
    await fs.writeFile(path.join(dir, 'short'), good.subarray(0, good.length - 5));
    await expectGraftError(readIdxHeader(path.join(dir, 'short')), 'dataset_invalid');
    // The header survives, the end is cut: the header read still works, the full read fails.
    const big = encodeIdx({ dims: [1000, 28, 28], data: bytes(784000, (i) => i % 251) });
    await fs.writeFile(path.join(dir, 'cut.gz'), zlib.gzipSync(big).subarray(0, 2000));
    expect((await readIdxHeader(path.join(dir, 'cut.gz'))).dims).toEqual([1000, 28, 28]);
    const err = await expectGraftError(readIdxFile(path.join(dir, 'cut.gz')), 'dataset_invalid');
    expect(err.details).toEqual({ reason: 'truncated', file: 'cut.gz' });
  });
});

// -----------------------------------------------------------------------------------------------
describe('DatasetCatalog', () => {
  test('describes an IDX dataset (gzip train, raw test) from headers and labels', async () => {
    const layout = await freshLayout();
    const dir = await datasetDir(layout, 'digits');
    await writeIdxSplit(dir, 'train', 12, [6, 5], 4, true);
    await writeIdxSplit(dir, 't10k', 5, [6, 5], 3);
    await fs.writeFile(path.join(dir, 'README.md'), 'not data');

    const d = await new DatasetCatalog(layout).describe('digits');
    expect(d).toMatchObject({
      name: 'digits',
      format: 'idx',
      inputShape: [6, 5, 1],
      classes: ['0', '1', '2', '3'],
      numClasses: 4,
      splits: { train: { count: 12, perClass: [3, 3, 3, 3] }, test: { count: 5, perClass: [2, 2, 1, 0] } },
    });
    const files = await fs.readdir(dir);
    const sizes = await Promise.all(files.map((f) => fs.stat(path.join(dir, f)).then((s) => s.size)));
    expect(d.sizeBytes).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(new Date(d.createdAt).toISOString()).toBe(d.createdAt);
    expect(Value.Check(DatasetDescriptionSchema, d)).toBe(true);
  });

  test('accepts idx4 images with channels; no test split', async () => {
    const layout = await freshLayout();
    await writeIdxSplit(await datasetDir(layout, 'rgb'), 'train', 4, [2, 2, 3], 2);
    const d = await new DatasetCatalog(layout).describe('rgb');
    expect(d.inputShape).toEqual([2, 2, 3]);
    expect(d.splits.test).toBeUndefined();
  });

  test('describes an image folder with train/ and test/ without decoding the images', async () => {
    const layout = await freshLayout();
    const dir = await datasetDir(layout, 'pets');
    await writeImage(path.join(dir, 'train/cat/a.png'), { width: 10, height: 8, color: [200, 10, 10] });
    await writeImage(path.join(dir, 'train/cat/b.PNG'), { width: 3, height: 3, color: [200, 10, 10] });
    await writeImage(path.join(dir, 'train/dog/a.jpg'), { width: 5, height: 5, color: [10, 10, 200] });
    await writeImage(path.join(dir, 'test/dog/x.jpeg'), { width: 5, height: 5, color: [10, 10, 200] });
    await fs.writeFile(path.join(dir, 'train/dog/notes.txt'), 'ignored');
    await fs.writeFile(path.join(dir, 'train/dog/.DS_Store'), 'ignored');

    const d = await new DatasetCatalog(layout).describe('pets');
    expect(d).toMatchObject({
      format: 'image-folder',
      inputShape: [8, 10, 3], // first image of the first class
      classes: ['cat', 'dog'],
      numClasses: 2,
      splits: { train: { count: 3, perClass: [2, 1] }, test: { count: 1, perClass: [0, 1] } },
    });
    expect(Value.Check(DatasetDescriptionSchema, d)).toBe(true);
  });

  test('<class>/* directly is all training data; a grayscale first image gives 1 channel', async () => {
    const layout = await freshLayout();
    const dir = await datasetDir(layout, 'flat');
    await writeImage(path.join(dir, 'b/1.png'), { width: 4, height: 6, color: [90, 90, 90], grey: true });
    await writeImage(path.join(dir, 'a/1.png'), { width: 4, height: 6, color: [90, 90, 90], grey: true });
    const d = await new DatasetCatalog(layout).describe('flat');
    expect(d.classes).toEqual(['a', 'b']);
    expect(d.inputShape).toEqual([6, 4, 1]);
    expect(d.splits).toEqual({ train: { count: 2, perClass: [1, 1] } });
  });

  test.each<[string, (dir: string) => Promise<void>, RegExp]>([
    ['an empty folder', async () => undefined, /neither IDX files, a labels\.csv nor image folders\. Expected train-images-idx3-ubyte/],
    ['images without labels', (dir) => writeIdxFile(path.join(dir, 'train-images-idx3-ubyte'), { dims: [1, 1, 1], data: bytes(1, () => 0) }), /add train-labels-idx1-ubyte/],
    ['only a test split', (dir) => writeIdxSplit(dir, 't10k', 2, [2, 2], 2).then(() => undefined), /no training files/],
    ['raw and gz of one file', async (dir) => {
      await writeIdxSplit(dir, 'train', 2, [2, 2], 2);
      await fs.copyFile(path.join(dir, 'train-labels-idx1-ubyte'), path.join(dir, 'train-labels-idx1-ubyte.gz'));
    }, /both exist; keep one/],
    ['labels that do not match the images', async (dir) => {
      await writeIdxSplit(dir, 'train', 3, [2, 2], 2);
      await writeIdxFile(path.join(dir, 'train-labels-idx1-ubyte'), { dims: [2], data: bytes(2, () => 0) });
    }, /has dimensions \[2\] but train-images-idx3-ubyte holds 3 images/],
    ['images that are not 3- or 4-dimensional', async (dir) => {
      await writeIdxFile(path.join(dir, 'train-images-idx3-ubyte'), { dims: [2, 4], data: bytes(8, () => 0) });
      await writeIdxFile(path.join(dir, 'train-labels-idx1-ubyte'), { dims: [2], data: bytes(2, () => 0) });
    }, /must be \[n, rows, cols\]/],
    ['a truncated image file', async (dir) => {
      await writeIdxSplit(dir, 'train', 3, [2, 2], 2);
      await fs.truncate(path.join(dir, 'train-images-idx3-ubyte'), 20);
    }, /the file is truncated/],
    ['an empty class folder', async (dir) => {
      await writeImage(path.join(dir, 'train/a/1.png'), { width: 2, height: 2, color: [0, 0, 0] });
      await fs.mkdir(path.join(dir, 'train/b'));
    }, /class folder train\/b\/ holds no \.png/],
    ['a test class unknown to train', async (dir) => {
      await writeImage(path.join(dir, 'train/a/1.png'), { width: 2, height: 2, color: [0, 0, 0] });
      await writeImage(path.join(dir, 'test/z/1.png'), { width: 2, height: 2, color: [0, 0, 0] });
    }, /no training counterpart: z/],
    ['train/ next to class folders', async (dir) => {
      await writeImage(path.join(dir, 'train/a/1.png'), { width: 2, height: 2, color: [0, 0, 0] });
      await writeImage(path.join(dir, 'b/1.png'), { width: 2, height: 2, color: [0, 0, 0] });
    }, /train\/ folder and also b\//],
  ])('%s is dataset_invalid with a message saying what is expected', async (_what, setup, message) => {
    const layout = await freshLayout();
    await setup(await datasetDir(layout, 'bad'));
    const err = await expectGraftError(new DatasetCatalog(layout).describe('bad'), 'dataset_invalid');
    expect(err.statusCode).toBe(422);
    expect(err.message).toMatch(message);
  });

  test('unknown datasets are dataset_not_found; exists() is false for them and for non-names', async () => {
    const layout = await freshLayout();
    const catalog = new DatasetCatalog(layout);
    const err = await expectGraftError(catalog.describe('nope'), 'dataset_not_found');
    expect(err.statusCode).toBe(404);
    expect(err.param).toBe('/dataset/name');
    await expectGraftError(catalog.describe('../checkpoints'), 'invalid_name');
    expect(await catalog.exists('nope')).toBe(false);
    expect(await catalog.exists('..')).toBe(false);
    await datasetDir(layout, 'there');
    expect(await catalog.exists('there')).toBe(true);
  });

  test('list() summarises every dataset by name, broken ones with their error', async () => {
    const layout = await freshLayout();
    await writeIdxSplit(await datasetDir(layout, 'b-idx'), 'train', 6, [3, 3], 3);
    await writeImage(path.join(await datasetDir(layout, 'a-img'), 'x/1.jpg'), { width: 7, height: 5, color: [1, 2, 3] });
    await datasetDir(layout, 'c-empty');
    const list = await new DatasetCatalog(layout).list();

    expect(list.map((s) => s.name)).toEqual(['a-img', 'b-idx', 'c-empty']);
    expect(list[0]).toMatchObject({ format: 'image-folder', inputShape: [5, 7, 3], numClasses: 1, trainCount: 1, testCount: null, error: null });
    expect(list[1]).toMatchObject({ format: 'idx', inputShape: [3, 3, 1], numClasses: 3, trainCount: 6, testCount: null, error: null });
    expect(list[2]).toMatchObject({ format: null, numClasses: null, trainCount: null, sizeBytes: 0, error: { code: 'dataset_invalid', param: null } });
    for (const s of list) expect(Value.Check(DatasetSummarySchema, s)).toBe(true);
  });

  test('list() of a volume without datasets/ is empty', async () => {
    expect(await new DatasetCatalog(new DataLayout(path.join(root, 'never-created'))).list()).toEqual([]);
  });
});

// -----------------------------------------------------------------------------------------------
describe('loadDataset', () => {
  test('IDX: [0,1] floats in NHWC, labels, classes, limit and the test split', async () => {
    const layout = await freshLayout();
    const dir = await datasetDir(layout, 'digits');
    const pixels = await writeIdxSplit(dir, 'train', 10, [3, 2], 5, true);
    await writeIdxSplit(dir, 't10k', 4, [3, 2], 5);

    const train = await loadDataset(layout, 'digits', { split: 'train' });
    expect(train.shape).toEqual([10, 3, 2, 1]);
    expect(train.images).toBeInstanceOf(Float32Array);
    expect(train.images[7]).toBeCloseTo(pixels[7] / 255, 7);
    expect(Math.max(...train.images)).toBeLessThanOrEqual(1);
    expect([...train.labels]).toEqual([0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
    expect(train.labels).toBeInstanceOf(Int32Array);
    expect(train.classes).toEqual(['0', '1', '2', '3', '4']);

    const limited = await loadDataset(layout, 'digits', { split: 'train', limit: 3, inputShape: [3, 2, 1] });
    expect(limited.shape).toEqual([3, 3, 2, 1]);
    expect(limited.images).toEqual(train.images.subarray(0, 18));

    const test = await loadDataset(layout, 'digits', { split: 'test' });
    expect(test.shape[0]).toBe(4);
    expect(test.classes).toEqual(train.classes);
  });

  test('IDX: a model input of another shape is dataset_shape_mismatch naming both shapes', async () => {
    const layout = await freshLayout();
    await writeIdxSplit(await datasetDir(layout, 'digits'), 'train', 2, [28, 28], 2);
    const err = await expectGraftError(loadDataset(layout, 'digits', { split: 'train', inputShape: [32, 32, 3] }), 'dataset_shape_mismatch');
    expect(err.param).toBe('/dataset/name');
    expect(err.message).toContain('[28, 28, 1]');
    expect(err.message).toContain('[32, 32, 3]');
  });

  test('a missing test split is dataset_split_empty', async () => {
    const layout = await freshLayout();
    await writeIdxSplit(await datasetDir(layout, 'digits'), 'train', 2, [2, 2], 2);
    const err = await expectGraftError(loadDataset(layout, 'digits', { split: 'test' }), 'dataset_split_empty');
    expect(err.message).toContain('no test samples');
  });

  test('image folder: resized to the model input, channels adapted, alpha dropped, classes interleaved', async () => {
    const layout = await freshLayout();
    const dir = await datasetDir(layout, 'colors');
    await writeImage(path.join(dir, 'train/blue/1.png'), { width: 10, height: 8, color: [0, 0, 255] });
    await writeImage(path.join(dir, 'train/blue/2.jpg'), { width: 3, height: 9, color: [0, 0, 255] });
    await writeImage(path.join(dir, 'train/grey/1.png'), { width: 5, height: 5, color: [128, 128, 128], grey: true });
    await writeImage(path.join(dir, 'train/red/1.png'), { width: 6, height: 6, color: [255, 0, 0], alpha: true });
    await writeImage(path.join(dir, 'test/red/1.jpg'), { width: 6, height: 6, color: [255, 0, 0] });

    const rgb = await loadDataset(layout, 'colors', { split: 'train', inputShape: [4, 6, 3] });
    expect(rgb.shape).toEqual([4, 4, 6, 3]);
    expect(rgb.classes).toEqual(['blue', 'grey', 'red']);
    // Round robin over classes: blue/1, grey/1, red/1, blue/2.
    expect([...rgb.labels]).toEqual([0, 1, 2, 0]);
    const per = 4 * 6 * 3;
    const firstPixel = (sample: number) => [...rgb.images.subarray(sample * per, sample * per + 3)];
    expect(firstPixel(0)).toEqual([0, 0, 1]); // blue PNG
    expect(firstPixel(1)).toEqual([128, 128, 128].map((v) => Math.fround(v / 255))); // grayscale → RGB
    expect(firstPixel(2)).toEqual([1, 0, 0]); // RGBA → RGB, alpha dropped
    firstPixel(3).forEach((v, c) => expect(Math.abs(v - [0, 0, 1][c])).toBeLessThan(3 / 255)); // blue JPEG, lossy

    const grey = await loadDataset(layout, 'colors', { split: 'train', inputShape: [5, 5, 1], limit: 3 });
    expect(grey.shape).toEqual([3, 5, 5, 1]);
    expect(grey.images[25]).toBeCloseTo(128 / 255, 6); // grey stays grey
    expect(new Set(grey.images.subarray(0, 25)).size).toBe(1); // uniform after resize

    // Without a model shape: the first training image's size and channels, for both splits.
    const natural = await loadDataset(layout, 'colors', { split: 'test' });
    expect(natural.shape).toEqual([1, 8, 10, 3]);
    expect([...natural.labels]).toEqual([2]);
  });

  test('image folder: undecodable files and unsupported channel counts are clear errors', async () => {
    const layout = await freshLayout();
    const dir = await datasetDir(layout, 'broken');
    await writeImage(path.join(dir, 'a/1.png'), { width: 2, height: 2, color: [0, 0, 0] });
    await fs.writeFile(path.join(dir, 'a/2.png'), 'not a png');
    const err = await expectGraftError(loadDataset(layout, 'broken', { split: 'train', inputShape: [2, 2, 1] }), 'dataset_invalid');
    expect(err.message).toContain(path.join('a', '2.png'));
    await expectGraftError(loadDataset(layout, 'broken', { split: 'train', inputShape: [2, 2, 4] }), 'dataset_shape_mismatch');
  });
});

// -----------------------------------------------------------------------------------------------
describe('seeded randomness', () => {
  test('same seed, same stream; different seeds differ; values in range', () => {
    const a = new Random(7);
    const b = new Random(7);
    const c = new Random(8);
    const xs = Array.from({ length: 100 }, () => a.nextUint32());
    expect(Array.from({ length: 100 }, () => b.nextUint32())).toEqual(xs);
    expect(Array.from({ length: 100 }, () => c.nextUint32())).not.toEqual(xs);
    for (let i = 0; i < 1000; i++) {
      const f = a.next();
      expect(f >= 0 && f < 1).toBe(true);
      const k = a.int(7);
      expect(Number.isInteger(k) && k >= 0 && k < 7).toBe(true);
    }
  });

  test('state capture and restore continue the exact stream, also through JSON', () => {
    const rng = new Random(42);
    for (let i = 0; i < 17; i++) rng.nextUint32();
    const saved = JSON.parse(JSON.stringify(rng.state()));
    const expected = Array.from({ length: 50 }, () => rng.nextUint32());
    const restored = Random.fromState(saved);
    expect(Array.from({ length: 50 }, () => restored.nextUint32())).toEqual(expected);
    expect(() => Random.fromState([0, 0, 0, 0])).toThrow(RangeError);
    expect(() => Random.fromState([1, 2, 3])).toThrow(RangeError);
    expect(() => Random.fromState([1, 2, 3, 2 ** 32])).toThrow(RangeError);
  });

  test('shuffleInPlace permutes deterministically, arrays and typed arrays alike', () => {
    const a = shuffleInPlace(Array.from({ length: 50 }, (_, i) => i), new Random(1));
    const t = shuffleInPlace(Int32Array.from({ length: 50 }, (_, i) => i), new Random(1));
    expect([...t]).toEqual(a);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(a).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});

describe('stratifiedSplit', () => {
  // Unbalanced classes: 0 → 50, 1 → 30, 2 → 17, 3 → 2, 4 → 1, shuffled.
  const labels = shuffleInPlace(Int32Array.from([...Array(50).fill(0), ...Array(30).fill(1), ...Array(17).fill(2), 3, 3, 4]), new Random(3));
  const perClass = (idx: Int32Array) => Array.from({ length: 5 }, (_, c) => idx.filter((i) => labels[i] === c).length);

  test('disjoint, covers everything, sorted, proportional per class, deterministic per seed', () => {
    const { trainIdx, valIdx } = stratifiedSplit(labels, 0.2, 11);
    expect(trainIdx.length + valIdx.length).toBe(labels.length);
    expect(new Set([...trainIdx, ...valIdx]).size).toBe(labels.length);
    expect([...trainIdx]).toEqual([...trainIdx].sort((a, b) => a - b));
    expect(valIdx.length).toBe(20); // round(100 * 0.2)

    const sizes = [50, 30, 17, 2, 1];
    perClass(valIdx).forEach((v, c) => expect(Math.abs(v - sizes[c] * 0.2)).toBeLessThan(1));
    const trainCounts = perClass(trainIdx);
    expect(trainCounts[3]).toBeGreaterThanOrEqual(1); // 2 samples: one may go, one stays
    expect(trainCounts[4]).toBe(1); // a single sample stays in training

    const again = stratifiedSplit(labels, 0.2, 11);
    expect(again.valIdx).toEqual(valIdx);
    expect(stratifiedSplit(labels, 0.2, 12).valIdx).not.toEqual(valIdx);
  });

  test('a class of two keeps one in training even at a large fraction', () => {
    const { trainIdx, valIdx } = stratifiedSplit(Int32Array.from([0, 0, 1, 1, 1, 1]), 0.9, 0);
    expect(perClassOf([0, 0, 1, 1, 1, 1], trainIdx)).toEqual([1, 1]);
    expect(valIdx.length).toBe(4);
  });

  test('fraction 0 keeps everything in training', () => {
    const { trainIdx, valIdx } = stratifiedSplit(labels, 0, 1);
    expect(trainIdx.length).toBe(labels.length);
    expect(valIdx.length).toBe(0);
  });

  test('bad labels are dataset_invalid, empty results dataset_split_empty', async () => {
    const err = await expectGraftError(Promise.resolve().then(() => stratifiedSplit(Int32Array.from([0, 3]), 0.5, 0, 3)), 'dataset_invalid');
    expect(err.message).toContain('label 3');
    expect(err.message).toContain('0..2');
    await expectGraftError(Promise.resolve().then(() => stratifiedSplit(Int32Array.from([0, -1]), 0.5, 0)), 'dataset_invalid');
    await expectGraftError(Promise.resolve().then(() => stratifiedSplit(new Int32Array(0), 0.5, 0)), 'dataset_split_empty');
    const tiny = await expectGraftError(Promise.resolve().then(() => stratifiedSplit(Int32Array.from([0, 0, 1, 1]), 0.1, 0)), 'dataset_split_empty');
    expect(tiny.param).toBe('/dataset/validationSplit');
    await expectGraftError(Promise.resolve().then(() => stratifiedSplit(labels, 1, 0)), 'invalid_validation_split');
  });
});

function perClassOf(labels: number[], idx: Int32Array): number[] {
  const out = new Array(Math.max(...labels) + 1).fill(0);
  idx.forEach((i) => out[labels[i]]++);
  return out;
}

// -----------------------------------------------------------------------------------------------
describe('writeMnistIdx', () => {
  test('writes 8000/2000 real digits as IDX, every class in both splits, the same bytes every run', async () => {
    const layout = await freshLayout();
    const dir = layout.datasetDir('mnist');
    expect(await writeMnistIdx(dir)).toEqual({ train: 8000, test: 2000 });

    const images = await readIdxFile(path.join(dir, 'train-images-idx3-ubyte'));
    const labels = await readIdxFile(path.join(dir, 'train-labels-idx1-ubyte'));
    const testImages = await readIdxFile(path.join(dir, 't10k-images-idx3-ubyte'));
    const testLabels = await readIdxFile(path.join(dir, 't10k-labels-idx1-ubyte'));
    expect(images.dims).toEqual([8000, 28, 28]);
    expect(labels.dims).toEqual([8000]);
    expect(testImages.dims).toEqual([2000, 28, 28]);
    expect(testLabels.dims).toEqual([2000]);
    for (const l of [labels.data, testLabels.data]) {
      expect(Math.max(...l)).toBe(9);
      expect(new Set(l).size).toBe(10);
    }
    // Real digits: mostly black background with bright strokes, not noise.
    const mean = images.data.reduce((a, b) => a + b, 0) / images.data.length;
    expect(mean).toBeGreaterThan(20);
    expect(mean).toBeLessThan(60);
    expect(Math.max(...images.data.subarray(0, 784))).toBe(255);

    const d = await new DatasetCatalog(layout).describe('mnist');
    expect(d).toMatchObject({ format: 'idx', inputShape: [28, 28, 1], numClasses: 10, splits: { train: { count: 8000 }, test: { count: 2000 } } });

    const again = path.join(root, `mnist-again-${count}`);
    expect(await writeMnistIdx(again, { train: 8000, test: 2000 })).toEqual({ train: 8000, test: 2000 });
    for (const f of await fs.readdir(dir)) {
      expect((await fs.readFile(path.join(again, f))).equals(await fs.readFile(path.join(dir, f)))).toBe(true);
    }
  });

  test('smaller splits, no test split, and impossible counts', async () => {
    const dir = path.join(root, 'mnist-small');
    expect(await writeMnistIdx(dir, { train: 100, test: 0 })).toEqual({ train: 100, test: 0 });
    expect((await fs.readdir(dir)).sort()).toEqual(['train-images-idx3-ubyte', 'train-labels-idx1-ubyte']);
    await expect(writeMnistIdx(path.join(root, 'mnist-too-big'), { train: 9000, test: 2000 })).rejects.toThrow(RangeError);
  });
});
