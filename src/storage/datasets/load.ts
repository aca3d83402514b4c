import type { DataLayout } from '../layout';
import { formatOf } from './formats';
import { DEFAULT_DATASET_LIMITS } from './limits';
import { locateDataset } from './scan';
import type { DatasetLimits, ImageShape, LoadedDataset, SplitName } from './types';

export interface LoadOptions {
  /** The model's input [height, width, channels]; null/absent = the dataset's own shape. */
  inputShape?: readonly number[] | null;
  split: SplitName;
  /** At most this many samples, taken from the start of the split. */
  limit?: number;
  /** The budgets to read under (the worker passes its config's); default: the configuration defaults. */
  limits?: DatasetLimits;
}

/**
 * Loads a dataset split as plain typed arrays, whatever its format (the engine turns them into
 * tensors; this stays free of TensorFlow so the core can own it).
 */
export async function loadDataset(layout: DataLayout, name: string, opts: LoadOptions): Promise<LoadedDataset> {
  const inputShape = opts.inputShape ? checkInputShape(opts.inputShape) : null;
  if (opts.limit !== undefined && !(Number.isInteger(opts.limit) && opts.limit >= 1)) {
    throw new RangeError(`limit must be a positive integer, got ${opts.limit}.`);
  }
  const files = await locateDataset(layout, name);
  return formatOf(files).load(files, { inputShape, split: opts.split, limit: opts.limit }, opts.limits ?? DEFAULT_DATASET_LIMITS);
}

function checkInputShape(shape: readonly number[]): ImageShape {
  if (shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new RangeError(`inputShape must be [height, width, channels] of positive integers, got ${JSON.stringify(shape)}.`);
  }
  return [shape[0], shape[1], shape[2]];
}
