import type { DataLayout } from '../layout';
import { formatOf } from './formats';
import { DEFAULT_DATASET_LIMITS } from './limits';
import { locateDataset } from './scan';
import type { ResizePolicy } from '../../spec/preprocess';
import { BYTE_TO_UNIT, type DatasetLimits, type ImageShape, type LoadedDataset, type SplitName, type SplitReader } from './types';

export interface LoadOptions {
  /** The model's input [height, width, channels]; null/absent = the dataset's own shape. */
  inputShape?: readonly number[] | null;
  split: SplitName;
  /** At most this many samples, taken from the start of the split. */
  limit?: number;
  /** How images are brought to `inputShape` (default stretch). */
  resize?: ResizePolicy;
  /** The budgets to read under (the worker passes its config's); default: the configuration defaults. */
  limits?: DatasetLimits;
}

/**
 * Loads a dataset split as plain typed arrays in [0, 1], whatever its format: the whole split in
 * memory, for small data and tests. Training streams instead (openSplit + the sample cache).
 */
export async function loadDataset(layout: DataLayout, name: string, opts: LoadOptions): Promise<LoadedDataset> {
  if (opts.limit !== undefined && !(Number.isInteger(opts.limit) && opts.limit >= 1)) {
    throw new RangeError(`limit must be a positive integer, got ${opts.limit}.`);
  }
  const reader = await openSplit(layout, name, opts);
  const n = Math.min(reader.count, opts.limit ?? reader.count);
  const [h, w, c] = reader.shape;
  const size = h * w * c;
  const images = new Float32Array(n * size);
  await reader.decodeAll((i, pixels) => {
    if (i >= n) return;
    for (let k = 0; k < size; k++) images[i * size + k] = BYTE_TO_UNIT[pixels[k]];
  }, n);
  return { images, shape: [n, h, w, c], labels: reader.labels.slice(0, n), classes: reader.classes };
}

/** A split of dataset `name`, ready to be decoded sample by sample. */
export async function openSplit(layout: DataLayout, name: string, opts: Omit<LoadOptions, 'limit'>): Promise<SplitReader> {
  const inputShape = opts.inputShape ? checkInputShape(opts.inputShape) : null;
  const files = await locateDataset(layout, name);
  return formatOf(files).open(files, { inputShape, split: opts.split, resize: opts.resize }, opts.limits ?? DEFAULT_DATASET_LIMITS);
}

function checkInputShape(shape: readonly number[]): ImageShape {
  if (shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new RangeError(`inputShape must be [height, width, channels] of positive integers, got ${JSON.stringify(shape)}.`);
  }
  return [shape[0], shape[1], shape[2]];
}
