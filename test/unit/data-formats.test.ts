import { promises as fs } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { DatasetCatalog, loadDataset } from '../../src/storage/datasets';
import { DataLayout } from '../../src/storage/layout';
import { makeTempDir } from '../helpers/env';
import { GraftError } from '../../src/errors';

/** Issue 13's formats: WebP, GIF (first frame), TIFF; labels.csv beside a flat folder; class balance. */

async function expectGraftError(p: Promise<unknown>, code: string): Promise<GraftError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(GraftError);
  expect((err as GraftError).code).toBe(code);
  return err as GraftError;
}

let dataDir: string;
let layout: DataLayout;

beforeAll(async () => {
  dataDir = await makeTempDir();
  layout = new DataLayout(dataDir);
  await layout.ensure();
});

afterAll(async () => {
  await fs.rm(dataDir, { recursive: true, force: true });
});

const image = (value: number) => sharp(Buffer.alloc(6 * 6 * 3, value), { raw: { width: 6, height: 6, channels: 3 } });

async function write(name: string, files: Record<string, Promise<Buffer> | string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(layout.datasetDir(name), rel);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, await content);
  }
}

test('WebP, GIF and TIFF images are read like PNG and JPEG', async () => {
  await write('mixed', {
    'a/1.webp': image(40).webp({ lossless: true }).toBuffer(),
    'a/2.gif': image(40).gif().toBuffer(),
    'b/1.tif': image(200).tiff().toBuffer(),
    'b/2.tiff': image(200).tiff().toBuffer(),
  });
  const loaded = await loadDataset(layout, 'mixed', { split: 'train', inputShape: [6, 6, 3] });
  expect(loaded.shape).toEqual([4, 6, 6, 3]);
  expect(Array.from(loaded.labels)).toEqual([0, 1, 0, 1]);
  const first = (i: number) => loaded.images[i * 108];
  expect(Math.abs(first(0) - 40 / 255)).toBeLessThan(0.03);
  expect(Math.abs(first(1) - 200 / 255)).toBeLessThan(0.01);
});

test('a labels.csv beside a flat folder labels its images; classes are the sorted labels', async () => {
  await write('csv', {
    'labels.csv': 'path,label\nimages/x.png,dog\n"images/y, z.png",cat\nimages/w.png,dog\n',
    'images/x.png': image(10).png().toBuffer(),
    'images/y, z.png': image(250).png().toBuffer(),
    'images/w.png': image(12).png().toBuffer(),
  });
  const description = await new DatasetCatalog(layout).describe('csv');
  expect(description).toMatchObject({ format: 'labels-csv', classes: ['cat', 'dog'], splits: { train: { count: 3, perClass: [1, 2] } }, classBalance: { cat: 1, dog: 2 }, warnings: [] });
  const loaded = await loadDataset(layout, 'csv', { split: 'train', inputShape: [6, 6, 1] });
  expect(Array.from(loaded.labels)).toEqual([0, 1, 1]);
  expect(loaded.images[0]).toBeGreaterThan(0.9); // the cat is the bright one
});

test.each([
  ['a path outside the dataset', 'path,label\n../x.png,a\n', /must be a path inside the dataset/],
  ['a missing file', 'images/nope.png,a\n', /is not a file in the dataset/],
  ['a row without a label', 'images/x.png\n', /line 1: expected path,label/],
  ['a file that is not an image', 'labels.csv,a\n', /is not an image/],
])('labels.csv with %s is dataset_invalid', async (_what, csv, message) => {
  const name = `bad-${Math.random().toString(36).slice(2, 8)}`;
  await write(name, { 'labels.csv': csv, 'images/x.png': image(1).png().toBuffer() });
  const err = await expectGraftError(new DatasetCatalog(layout).describe(name), 'dataset_invalid');
  expect(err.message).toMatch(message);
});

test('heavy class imbalance is reported with a warning', async () => {
  const files: Record<string, Promise<Buffer>> = {};
  for (let i = 0; i < 22; i++) files[`many/${i}.png`] = image(i).png().toBuffer();
  files['few/0.png'] = image(1).png().toBuffer();
  files['few/1.png'] = image(2).png().toBuffer();
  await write('skewed', files);
  const description = await new DatasetCatalog(layout).describe('skewed');
  expect(description.classBalance).toEqual({ few: 2, many: 22 });
  expect(description.warnings).toHaveLength(1);
  expect(description.warnings![0]).toMatch(/"many" has 22 training samples, "few" only 2 \(11x, above 10x\)/);
});
