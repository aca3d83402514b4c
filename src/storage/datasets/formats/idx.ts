import path from 'node:path';
import { UnprocessableError } from '../../../errors';
import { checkIdxFile, readIdxFile, readIdxHeader } from '../../idx';
import {
  classBalance,
  DATASET_PARAM,
  datasetInvalid,
  displayPath,
  formatShape,
  splitEmpty,
  type DatasetContent,
  type DatasetFiles,
  type DatasetFormat,
  type DatasetLimits,
  type DetectContext,
  type ImageShape,
  type LoadRequest,
  type SampleSink,
  type SplitReader,
  type SplitName,
} from '../types';

/**
 * IDX, MNIST's format: train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz]
 * [+ t10k-images-idx3-ubyte[.gz] + t10k-labels-idx1-ubyte[.gz]] at the top of the folder.
 * Labels are the class indices; images are used as stored (never resampled).
 */

const IDX_FILE = /^(train|t10k)-(images-idx[34]|labels-idx1)-ubyte(\.gz)?$/;
const IDX_PREFIX: Record<SplitName, string> = { train: 'train', test: 't10k' };

export interface IdxSplitFiles {
  images: string;
  labels: string;
}

export interface IdxFiles extends DatasetFiles {
  format: 'idx';
  train: IdxSplitFiles;
  test: IdxSplitFiles | null;
}

export interface IdxSplitInfo {
  files: IdxSplitFiles;
  count: number;
  shape: ImageShape;
  labels: Uint8Array;
}

export interface IdxInfo {
  classes: string[];
  shape: ImageShape;
  train: IdxSplitInfo;
  test: IdxSplitInfo | null;
}

async function detect({ dir, name, entries, expected }: DetectContext): Promise<IdxFiles | null> {
  const idxNames = entries.filter((e) => e.isFile() && IDX_FILE.test(e.name)).map((e) => e.name);
  if (idxNames.length === 0) return null;
  const pick = (split: SplitName, kind: 'images' | 'labels'): string | null => {
    const found = idxNames.filter((f) => f.startsWith(`${IDX_PREFIX[split]}-${kind}-`));
    if (found.length > 1) throw datasetInvalid(name, `${found.join(' and ')} both exist; keep one.`);
    return found[0] ?? null;
  };
  const splitFiles = (split: SplitName): IdxSplitFiles | null => {
    const images = pick(split, 'images');
    const labels = pick(split, 'labels');
    if (images && labels) return { images, labels };
    if (images || labels) {
      const prefix = IDX_PREFIX[split];
      const missing = images ? `${prefix}-labels-idx1-ubyte[.gz]` : `${prefix}-images-idx3-ubyte[.gz]`;
      throw datasetInvalid(name, `${images ?? labels} has no partner: add ${missing}. ${expected}`);
    }
    return null;
  };
  const train = splitFiles('train');
  if (!train) throw datasetInvalid(name, `it has ${idxNames.join(', ')} but no training files. ${expected}`);
  return { format: 'idx', name, dir, train, test: splitFiles('test') };
}

/** Reads image headers and whole label files; checks that images, labels and splits agree and fit the budget. */
export async function inspectIdx(files: IdxFiles, limits: DatasetLimits): Promise<IdxInfo> {
  const [train, test] = await Promise.all([inspectSplit(files, files.train, limits), files.test ? inspectSplit(files, files.test, limits) : null]);
  if (train.count === 0) throw datasetInvalid(files.name, `${files.train.images} holds no images.`);
  if (test && test.shape.join() !== train.shape.join()) {
    throw datasetInvalid(files.name, `test images are ${formatShape(test.shape)} but training images are ${formatShape(train.shape)}.`);
  }
  let maxLabel = 0;
  for (const split of [train, test]) split?.labels.forEach((l) => { if (l > maxLabel) maxLabel = l; });
  // Labels are the class indices themselves, so the classes are 0..max even if one is unused.
  const classes = Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
  return { classes, shape: train.shape, train, test };
}

async function inspectSplit(files: IdxFiles, split: IdxSplitFiles, limits: DatasetLimits): Promise<IdxSplitInfo> {
  const header = await readIdxHeader(path.join(files.dir, split.images), displayPath(files, split.images), limits.maxFileBytes);
  const [count, shape] = idxImageShape(header.dims, files, split.images);
  const labels = await readIdxFile(path.join(files.dir, split.labels), displayPath(files, split.labels), limits.maxFileBytes);
  if (labels.dims.length !== 1 || labels.dims[0] !== count) {
    throw datasetInvalid(files.name, `${split.labels} has dimensions [${labels.dims.join(', ')}] but ${split.images} holds ${count} images: expected [${count}].`);
  }
  return { files: split, count, shape, labels: labels.data };
}

/** [n, rows, cols] (idx3) or [n, rows, cols, channels] (idx4) → n and the sample shape. */
function idxImageShape(dims: number[], files: IdxFiles, rel: string): [number, ImageShape] {
  const [n, rows, cols, channels = 1] = dims;
  if ((dims.length !== 3 && dims.length !== 4) || rows < 1 || cols < 1 || channels < 1) {
    throw datasetInvalid(
      files.name,
      `${rel} has dimensions [${dims.join(', ')}]; image files must be [n, rows, cols] (idx3) or [n, rows, cols, channels] (idx4) with non-zero sizes.`,
    );
  }
  return [n, [rows, cols, channels]];
}

function histogram(labels: ArrayLike<number>, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}

async function describe(files: IdxFiles, limits: DatasetLimits): Promise<DatasetContent> {
  const info = await inspectIdx(files, limits);
  const n = info.classes.length;
  const split = (s: IdxSplitInfo) => ({ count: s.count, perClass: histogram(s.labels, n) });
  return {
    format: 'idx',
    inputShape: info.shape,
    classes: info.classes,
    numClasses: n,
    splits: { train: split(info.train), ...(info.test ? { test: split(info.test) } : {}) },
    ...classBalance(info.classes, histogram(info.train.labels, n)),
  };
}

/** Headers, labels, and every image file inflated once as a stream (nothing kept) to prove its size. */
async function validate(files: IdxFiles, limits: DatasetLimits): Promise<void> {
  const info = await inspectIdx(files, limits);
  for (const split of [info.train, info.test]) {
    if (split) await checkIdxFile(path.join(files.dir, split.files.images), displayPath(files, split.files.images), limits.maxFileBytes);
  }
}

async function open(files: IdxFiles, { inputShape, split }: LoadRequest, limits: DatasetLimits): Promise<SplitReader> {
  const info = await inspectIdx(files, limits);
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
  const decodeAll = async (sink: SampleSink, limit = part.count) => {
    const rel = part.files.images;
    const images = await readIdxFile(path.join(files.dir, rel), displayPath(files, rel), limits.maxFileBytes);
    const [count, shape] = idxImageShape(images.dims, files, rel);
    if (count !== part.count || shape.join() !== info.shape.join()) {
      throw datasetInvalid(files.name, `${rel} changed while it was being read; try again.`);
    }
    const size = shape[0] * shape[1] * shape[2];
    for (let i = 0; i < Math.min(count, limit); i++) await sink(i, images.data.subarray(i * size, (i + 1) * size));
  };
  return { count: part.count, shape: info.shape, labels: Int32Array.from(part.labels), classes: info.classes, costly: false, decodeAll };
}

export const idxFormat: DatasetFormat<IdxFiles> = {
  name: 'idx',
  noun: 'IDX files',
  expected: 'train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz] (optionally t10k-images-idx3-ubyte[.gz] + t10k-labels-idx1-ubyte[.gz])',
  detect,
  describe,
  validate,
  open,
};
