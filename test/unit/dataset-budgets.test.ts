import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { GraftError } from '../../src/errors';
import { DEFAULT_CONFIG } from '../../src/config';
import { DEFAULT_ARCHIVE_LIMITS } from '../../src/storage/archive';
import {
  DATASET_FORMAT_NAMES,
  DEFAULT_DATASET_LIMITS,
  DatasetCatalog,
  loadDataset,
  validateDatasetFolder,
  type DatasetLimits,
} from '../../src/storage/datasets';
import { checkIdxFile, encodeIdx, readIdxFile, readIdxHeader, writeIdxFile } from '../../src/storage/idx';
import { DataLayout } from '../../src/storage/layout';

/**
 * Describing is cheap (stored once, reused while the folder is unchanged) and reading user data
 * is budgeted: IDX inflation by the header and DATASET_MAX_BYTES, images by pixels and dimension.
 */
let root: string;
let count = 0;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'graft-dataset-budgets-'));
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function freshLayout(): Promise<DataLayout> {
  const layout = new DataLayout(path.join(root, `data-${++count}`));
  await layout.ensure();
  return layout;
}

async function expectGraftError(p: Promise<unknown>, code: string): Promise<GraftError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(GraftError);
  expect((err as GraftError).code).toBe(code);
  return err as GraftError;
}

const bytes = (n: number, f: (i: number) => number) => Uint8Array.from({ length: n }, (_, i) => f(i));

async function writeIdxDataset(dir: string, n = 10, gzip = false): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const ext = gzip ? '.gz' : '';
  await writeIdxFile(path.join(dir, `train-images-idx3-ubyte${ext}`), { dims: [n, 4, 4], data: bytes(n * 16, (i) => i % 256) }, { gzip });
  await writeIdxFile(path.join(dir, `train-labels-idx1-ubyte${ext}`), { dims: [n], data: bytes(n, (i) => i % 3) }, { gzip });
}

async function writePng(file: string, width: number, height: number): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await sharp({ create: { width, height, channels: 3, background: { r: 9, g: 99, b: 199 } } }).png().toFile(file);
}

describe('one source of truth for the defaults', () => {
  test('archive and dataset limits default to the configuration defaults', () => {
    expect(DEFAULT_ARCHIVE_LIMITS).toEqual({
      maxTotalBytes: DEFAULT_CONFIG.ARCHIVE_MAX_TOTAL_BYTES,
      maxEntries: DEFAULT_CONFIG.ARCHIVE_MAX_ENTRIES,
      maxEntryBytes: DEFAULT_CONFIG.ARCHIVE_MAX_ENTRY_BYTES,
    });
    expect(DEFAULT_DATASET_LIMITS).toEqual({
      maxFileBytes: DEFAULT_CONFIG.DATASET_MAX_BYTES,
      imageMaxPixels: DEFAULT_CONFIG.IMAGE_MAX_PIXELS,
      imageMaxDimension: DEFAULT_CONFIG.IMAGE_MAX_DIMENSION,
    });
  });

  test('the format registry lists every format once', () => {
    expect(DATASET_FORMAT_NAMES).toEqual(['idx', 'labels-csv', 'image-folder']);
  });
});

describe('stored descriptions', () => {
  test('describing twice reads the files once: the second answer comes from the stored description', async () => {
    const layout = await freshLayout();
    const dir = layout.datasetDir('digits');
    await writeIdxDataset(dir, 10, true);
    const labels = path.join(dir, 'train-labels-idx1-ubyte.gz');
    const then = Math.floor(Date.now() / 1000) - 60; // whole seconds: restorable exactly
    await fs.utimes(labels, then, then);
    const catalog = new DatasetCatalog(layout);
    const first = await catalog.describe('digits');
    expect(first).toMatchObject({ format: 'idx', numClasses: 3, splits: { train: { count: 10 } } });
    expect(await fs.readdir(path.join(layout.datasetMetaDir))).toEqual(['digits.json']);

    // Garble the label file behind the catalog's back, keeping its size and times: a re-read
    // would now fail, so an unchanged answer proves the files were not read again.
    await fs.writeFile(labels, Buffer.alloc((await fs.stat(labels)).size, 0xee));
    await fs.utimes(labels, then, then);
    expect(await catalog.describe('digits')).toEqual(first);
    expect((await catalog.list())[0]).toMatchObject({ name: 'digits', trainCount: 10, error: null });
    // Another catalog on the same volume (the worker's) uses it too.
    expect(await new DatasetCatalog(layout).describe('digits')).toEqual(first);

    // A real change (new mtime) invalidates it: now the garbled file is read and refused.
    await fs.utimes(labels, then + 5, then + 5);
    await expectGraftError(catalog.describe('digits'), 'dataset_invalid');
  });

  test('adding an image to a class folder invalidates an image-folder description', async () => {
    const layout = await freshLayout();
    const dir = layout.datasetDir('shapes');
    await writePng(path.join(dir, 'train/a/1.png'), 5, 4);
    await writePng(path.join(dir, 'train/b/1.png'), 5, 4);
    const catalog = new DatasetCatalog(layout);
    expect((await catalog.describe('shapes')).splits.train.perClass).toEqual([1, 1]);
    await writePng(path.join(dir, 'train/b/2.png'), 5, 4);
    expect((await catalog.describe('shapes')).splits.train.perClass).toEqual([1, 2]);
    await fs.mkdir(path.join(dir, 'train/c'));
    await writePng(path.join(dir, 'train/c/1.png'), 5, 4);
    expect((await catalog.describe('shapes')).classes).toEqual(['a', 'b', 'c']);
  });

  test('a broken dataset is stored with its error, and fixed when the folder changes', async () => {
    const layout = await freshLayout();
    const dir = layout.datasetDir('later');
    await fs.mkdir(dir, { recursive: true });
    const catalog = new DatasetCatalog(layout);
    await expectGraftError(catalog.describe('later'), 'dataset_invalid');
    expect((await catalog.list())[0].error).toMatchObject({ code: 'dataset_invalid' });
    await writeIdxDataset(dir);
    expect((await catalog.describe('later')).format).toBe('idx');
  });

  test('remove() deletes the dataset and its stored description; a second remove is dataset_not_found', async () => {
    const layout = await freshLayout();
    await writeIdxDataset(layout.datasetDir('gone'));
    const catalog = new DatasetCatalog(layout);
    await catalog.describe('gone');
    await catalog.remove('gone');
    expect(await catalog.exists('gone')).toBe(false);
    await expect(fs.stat(path.join(layout.datasetMetaDir, 'gone.json'))).rejects.toThrow();
    expect(await fs.readdir(layout.tmpDir)).toEqual([]);
    await expectGraftError(catalog.remove('gone'), 'dataset_not_found');
    // A new dataset under the old name is described afresh.
    await writeIdxDataset(layout.datasetDir('gone'), 7);
    expect((await catalog.describe('gone')).splits.train.count).toBe(7);
  });
});

describe('IDX inflation budget', () => {
  const small: DatasetLimits = { ...DEFAULT_DATASET_LIMITS, maxFileBytes: 4096 };

  test('a header implying more than DATASET_MAX_BYTES is refused before anything is inflated', async () => {
    const dir = await fs.mkdtemp(path.join(root, 'idx-'));
    const file = path.join(dir, 'x-idx3-ubyte.gz');
    // The header claims 1000 x 100 x 100 bytes (10 MB); the file holds a few.
    const header = encodeIdx({ dims: [0, 100, 100], data: new Uint8Array(0) });
    header.writeUInt32BE(1000, 4);
    await fs.writeFile(file, zlib.gzipSync(header));
    const err = await expectGraftError(readIdxFile(file, 'x', small.maxFileBytes), 'dataset_invalid');
    expect(err.statusCode).toBe(422);
    expect(err.details).toMatchObject({ reason: 'too_large' });
    expect(err.message).toContain('DATASET_MAX_BYTES');
    await expectGraftError(readIdxHeader(file, 'x', small.maxFileBytes), 'dataset_invalid');
  });

  test('a gzip bomb behind an honest small header is stopped at the size the header implies', async () => {
    const dir = await fs.mkdtemp(path.join(root, 'idx-'));
    const file = path.join(dir, 'bomb-idx3-ubyte.gz');
    const header = encodeIdx({ dims: [1, 4, 4], data: new Uint8Array(16) });
    // 16 data bytes promised, 16 MB delivered: inflated only to 17 bytes past the header.
    await fs.writeFile(file, zlib.gzipSync(Buffer.concat([header, Buffer.alloc(16 * 1024 * 1024)]), { level: 1 }));
    const before = process.memoryUsage().arrayBuffers;
    const err = await expectGraftError(readIdxFile(file, 'bomb'), 'dataset_invalid');
    expect(err.details).toMatchObject({ reason: 'size_mismatch' });
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 * 1024 * 1024);
    const streamed = await expectGraftError(checkIdxFile(file, 'bomb'), 'dataset_invalid');
    expect(streamed.details).toMatchObject({ reason: 'size_mismatch' });
  });

  test('an uploaded IDX dataset whose images inflate beyond their header fails validation (422), not only at training', async () => {
    const layout = await freshLayout();
    const dir = layout.datasetDir('liar');
    await writeIdxDataset(dir, 4, true);
    const images = path.join(dir, 'train-images-idx3-ubyte.gz');
    const raw = zlib.gunzipSync(await fs.readFile(images));
    await fs.writeFile(images, zlib.gzipSync(Buffer.concat([raw, Buffer.alloc(1000)])));
    // Describing reads headers only, so it cannot tell; validating inflates (as a stream) and does.
    expect((await new DatasetCatalog(layout).describe('liar')).splits.train.count).toBe(4);
    await expectGraftError(validateDatasetFolder(layout.root, 'liar', DEFAULT_DATASET_LIMITS), 'dataset_invalid');
    await expectGraftError(loadDataset(layout, 'liar', { split: 'train' }), 'dataset_invalid');
  });

  test('a dataset over DATASET_MAX_BYTES is refused by describe, validate and load alike', async () => {
    const layout = await freshLayout();
    await writeIdxDataset(layout.datasetDir('big'), 300); // 300 x 16 = 4800 image bytes
    await expectGraftError(new DatasetCatalog(layout, small).describe('big'), 'dataset_invalid');
    await expectGraftError(validateDatasetFolder(layout.root, 'big', small), 'dataset_invalid');
    await expectGraftError(loadDataset(layout, 'big', { split: 'train', limits: small }), 'dataset_invalid');
    expect((await loadDataset(layout, 'big', { split: 'train' })).shape).toEqual([300, 4, 4, 1]);
  });
});

describe('image budgets', () => {
  test('images over IMAGE_MAX_DIMENSION or IMAGE_MAX_PIXELS are refused when validating and loading', async () => {
    const layout = await freshLayout();
    const dir = layout.datasetDir('photos');
    await writePng(path.join(dir, 'a/1.png'), 40, 30);
    await writePng(path.join(dir, 'b/1.png'), 30, 30);
    await validateDatasetFolder(layout.root, 'photos', DEFAULT_DATASET_LIMITS);

    const narrow: DatasetLimits = { ...DEFAULT_DATASET_LIMITS, imageMaxDimension: 32 };
    const err = await expectGraftError(validateDatasetFolder(layout.root, 'photos', narrow), 'dataset_invalid');
    expect(err.message).toContain(path.join('a', '1.png'));
    expect(err.message).toContain('IMAGE_MAX_DIMENSION');
    const few: DatasetLimits = { ...DEFAULT_DATASET_LIMITS, imageMaxPixels: 1000 };
    expect((await expectGraftError(validateDatasetFolder(layout.root, 'photos', few), 'dataset_invalid')).message).toContain('IMAGE_MAX_PIXELS');
    expect((await expectGraftError(loadDataset(layout, 'photos', { split: 'train', inputShape: [8, 8, 3], limits: few }), 'dataset_invalid')).message).toContain('IMAGE_MAX_PIXELS');
    expect((await loadDataset(layout, 'photos', { split: 'train', inputShape: [8, 8, 3] })).shape).toEqual([2, 8, 8, 3]);
  });
});
