import os from 'node:os';
import path from 'node:path';
import { UnprocessableError } from '../../../src/errors';
import {
  DATASET_PARAM,
  datasetInvalid,
  displayPath,
  formatShape,
  idxImageShape,
  inspectIdx,
  locateDataset,
  readImageShape,
  type IdxFiles,
  type ImageFolderFiles,
  type ImageShape,
  type SplitName,
} from '../../../src/storage/datasets';
import { readIdxFile } from '../../../src/storage/idx';
import type { DataLayout } from '../../../src/storage/layout';
import { forEachConcurrent } from './concurrency';
import { decodeImage } from './decode';

/**
 * Loads a dataset split as plain typed arrays (the engine turns them into tensors; this module
 * stays free of TensorFlow so it can be tested and reused without it).
 */

/** Images in flight: libvips uses its own threads per image, so a couple per core keeps the CPU busy while files are read. */
const DECODE_CONCURRENCY = 2 * os.availableParallelism();
/** Channel counts an image decodes to: grayscale or RGB. */
const IMAGE_CHANNELS = [1, 3];
/** pixel byte → [0, 1]; a table is both faster and exactly the same as dividing every time. */
const BYTE_TO_UNIT = Float32Array.from({ length: 256 }, (_, i) => i / 255);

export interface LoadOptions {
  /** The model's input [height, width, channels]; null/absent = the dataset's own shape. */
  inputShape?: readonly number[] | null;
  split: SplitName;
  /** At most this many samples, taken from the start of the split. */
  limit?: number;
}

export interface LoadedDataset {
  /** n × h × w × c floats in [0, 1], row-major (NHWC). */
  images: Float32Array;
  shape: [number, number, number, number];
  /** Class index per sample. */
  labels: Int32Array;
  classes: string[];
}

export async function loadDataset(layout: DataLayout, name: string, opts: LoadOptions): Promise<LoadedDataset> {
  const inputShape = opts.inputShape ? checkInputShape(opts.inputShape) : null;
  if (opts.limit !== undefined && !(Number.isInteger(opts.limit) && opts.limit >= 1)) {
    throw new RangeError(`limit must be a positive integer, got ${opts.limit}.`);
  }
  const files = await locateDataset(layout, name);
  return files.format === 'idx' ? loadIdx(files, opts.split, inputShape, opts.limit) : loadImageFolder(files, opts.split, inputShape, opts.limit);
}

function checkInputShape(shape: readonly number[]): ImageShape {
  if (shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new RangeError(`inputShape must be [height, width, channels] of positive integers, got ${JSON.stringify(shape)}.`);
  }
  return [shape[0], shape[1], shape[2]];
}

async function loadIdx(files: IdxFiles, split: SplitName, inputShape: ImageShape | null, limit?: number): Promise<LoadedDataset> {
  const info = await inspectIdx(files);
  const part = info[split];
  if (!part || part.count === 0) throw splitEmpty(files.name, split);
  // IDX data is used as stored: resampling digits would silently change the task.
  if (inputShape && inputShape.join() !== info.shape.join()) {
    throw new UnprocessableError(
      'dataset_shape_mismatch',
      `Dataset "${files.name}" holds ${formatShape(info.shape)} samples ([height, width, channels]) but the model's input is ${formatShape(inputShape)}; ` +
        'choose a dataset of the model\'s shape or a model built for this one.',
      DATASET_PARAM,
      { datasetShape: info.shape, modelShape: inputShape },
    );
  }

  const rel = part.files.images;
  const images = await readIdxFile(path.join(files.dir, rel), displayPath(files, rel));
  const [count, shape] = idxImageShape(images.dims, files, rel);
  if (count !== part.count || shape.join() !== info.shape.join()) {
    throw datasetInvalid(files.name, `${rel} changed while it was being read; try again.`);
  }
  const n = Math.min(count, limit ?? count);
  const sampleSize = shape[0] * shape[1] * shape[2];
  const pixels = new Float32Array(n * sampleSize);
  const bytes = images.data;
  for (let i = 0; i < pixels.length; i++) pixels[i] = BYTE_TO_UNIT[bytes[i]];
  return { images: pixels, shape: [n, ...shape], labels: Int32Array.from(part.labels.subarray(0, n)), classes: info.classes };
}

async function loadImageFolder(files: ImageFolderFiles, split: SplitName, inputShape: ImageShape | null, limit?: number): Promise<LoadedDataset> {
  const perClass = files[split];
  const samples = perClass ? interleave(perClass) : [];
  if (samples.length === 0) throw splitEmpty(files.name, split);
  const n = Math.min(samples.length, limit ?? samples.length);

  // Without a model shape, use the first training image's, as describe() reports it, so the
  // train and test splits of one dataset always agree.
  const firstImage = files.train[0][0];
  const shape = inputShape ?? (await readImageShape(path.join(files.dir, firstImage)).catch((err) => { throw undecodable(files, firstImage, err); }));
  if (!IMAGE_CHANNELS.includes(shape[2])) {
    throw new UnprocessableError(
      'dataset_shape_mismatch',
      `Dataset "${files.name}" holds images, which decode to 1 (grayscale) or 3 (RGB) channels, but the model's input ${formatShape(shape)} has ${shape[2]}.`,
      DATASET_PARAM,
      { modelShape: shape },
    );
  }

  const sampleSize = shape[0] * shape[1] * shape[2];
  const images = new Float32Array(n * sampleSize);
  const labels = new Int32Array(n);
  await forEachConcurrent(samples.slice(0, n), DECODE_CONCURRENCY, async ({ file, label }, i) => {
    const bytes = await decodeImage(path.join(files.dir, file), shape).catch((err) => { throw undecodable(files, file, err); });
    const offset = i * sampleSize;
    for (let k = 0; k < sampleSize; k++) images[offset + k] = BYTE_TO_UNIT[bytes[k]];
    labels[i] = label;
  });
  return { images, shape: [n, ...shape], labels, classes: files.classes };
}

/**
 * Round-robin over classes (class 0's first file, class 1's first file, ...): files are stored
 * class by class, and this order makes any prefix (`limit`) cover every class evenly.
 */
function interleave(perClass: string[][]): { file: string; label: number }[] {
  const out: { file: string; label: number }[] = [];
  const longest = Math.max(0, ...perClass.map((f) => f.length));
  for (let k = 0; k < longest; k++) {
    perClass.forEach((list, label) => {
      if (k < list.length) out.push({ file: list[k], label });
    });
  }
  return out;
}

function undecodable(files: ImageFolderFiles, rel: string, err: unknown): UnprocessableError {
  return datasetInvalid(files.name, `${rel} cannot be decoded as an image (${(err as Error).message}).`);
}

function splitEmpty(name: string, split: SplitName): UnprocessableError {
  const hint = split === 'test' ? ' (add t10k-images-idx3-ubyte + t10k-labels-idx1-ubyte, or test/<class>/ folders)' : '';
  return new UnprocessableError('dataset_split_empty', `Dataset "${name}" has no ${split} samples${hint}.`, DATASET_PARAM);
}
