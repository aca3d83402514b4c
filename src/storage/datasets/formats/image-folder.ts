import os from 'node:os';
import path from 'node:path';
import { UnprocessableError } from '../../../errors';
import { forEachConcurrent } from '../../concurrency';
import { checkDecodes, decodeImage, readImageShape } from '../images';
import { visibleEntries } from '../entries';
import {
  classBalance,
  DATASET_PARAM,
  datasetInvalid,
  formatShape,
  splitEmpty,
  type DatasetContent,
  type DatasetFiles,
  type DatasetFormat,
  type DatasetLimits,
  type DetectContext,
  type LoadRequest,
  type SampleSink,
  type SplitReader,
  type SplitName,
} from '../types';

/**
 * Image folders: train/<class>/*.{png,jpg,webp,gif,tiff} [+ test/<class>/*], or <class>/* directly.
 * A class is a folder name; images are resized to the model's input when loaded.
 */

/** What sharp decodes (GIF and TIFF: their first frame/page). */
export const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.tif', '.tiff']);
const SPLIT_FOLDERS: readonly SplitName[] = ['train', 'test'];
/** Channel counts an image decodes to: grayscale or RGB. */
const IMAGE_CHANNELS = [1, 3];
/** Full decodes in flight while validating an upload: each holds one whole image in memory. */
const VALIDATE_CONCURRENCY = 4;
/** Images in flight while loading: libvips uses its own threads per image, so a couple per core keeps the CPU busy while files are read. */
const LOAD_CONCURRENCY = 2 * os.availableParallelism();

export interface ImageFolderFiles extends DatasetFiles {
  format: 'image-folder' | 'labels-csv';
  /** Sorted class folder names. */
  classes: string[];
  /** Image files per class (index = label), sorted. */
  train: string[][];
  test: string[][] | null;
}

async function detect({ dir, name, entries, expected }: DetectContext): Promise<ImageFolderFiles | null> {
  const folders = entries.filter((e) => e.isDirectory()).map((e) => e.name);
  if (folders.length === 0) return null;
  let train: Map<string, string[]>;
  let test: Map<string, string[]> | null = null;
  if (folders.includes('train')) {
    const strays = folders.filter((f) => !SPLIT_FOLDERS.includes(f as SplitName));
    if (strays.length > 0) {
      throw datasetInvalid(name, `it has a train/ folder and also ${strays.map((f) => `${f}/`).join(', ')}: put class folders under train/ (and test/). ${expected}`);
    }
    train = await scanClasses(dir, 'train', name, expected);
    if (folders.includes('test')) test = await scanClasses(dir, 'test', name, expected);
  } else if (folders.includes('test')) {
    throw datasetInvalid(name, `it has a test/ folder but no train/ folder. ${expected}`);
  } else {
    train = await scanClasses(dir, '', name, expected);
  }

  const classes = [...train.keys()];
  const trainPrefix = folders.includes('train') ? 'train/' : '';
  for (const [cls, files] of train) {
    // A class without training images would be an output the model can never learn.
    if (files.length === 0) throw datasetInvalid(name, `class folder ${trainPrefix}${cls}/ holds no .png/.jpg/.jpeg/.webp/.gif/.tif/.tiff images.`);
  }
  const unknown = test ? [...test.keys()].filter((c) => !train.has(c)) : [];
  if (unknown.length > 0) {
    throw datasetInvalid(name, `test/ has class folders with no training counterpart: ${unknown.join(', ')}. The model can only learn classes under train/.`);
  }
  return {
    format: 'image-folder',
    name,
    dir,
    classes,
    train: classes.map((c) => train.get(c)!),
    test: test ? classes.map((c) => test.get(c) ?? []) : null,
  };
}

/** Class folder → its image files (paths relative to the dataset), both sorted so labels and order are stable. */
async function scanClasses(dir: string, sub: string, name: string, expected: string): Promise<Map<string, string[]>> {
  const classNames = (await visibleEntries(path.join(dir, sub)))
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  if (classNames.length === 0) throw datasetInvalid(name, `${sub ? `${sub}/` : 'the folder'} holds no class folders. ${expected}`);
  const lists = await Promise.all(
    classNames.map(async (cls) => {
      const files = (await visibleEntries(path.join(dir, sub, cls)))
        .filter((e) => e.isFile() && IMAGE_EXTENSIONS.has(path.extname(e.name).toLowerCase()))
        .map((e) => path.join(sub, cls, e.name))
        .sort();
      return [cls, files] as const;
    }),
  );
  return new Map(lists);
}

export async function describe(files: ImageFolderFiles, limits: DatasetLimits): Promise<DatasetContent> {
  const split = (perClass: string[][]) => {
    const counts = perClass.map((f) => f.length);
    return { count: counts.reduce((a, b) => a + b, 0), perClass: counts };
  };
  // Unreadable first image: report the shape as unknown; decoding it at training time names the file.
  const inputShape = await readImageShape(path.join(files.dir, files.train[0][0]), limits).catch(() => null);
  return {
    format: 'image-folder',
    inputShape,
    classes: files.classes,
    numClasses: files.classes.length,
    splits: { train: split(files.train), ...(files.test ? { test: split(files.test) } : {}) },
    ...classBalance(files.classes, files.train.map((f) => f.length)),
  };
}

/** Every image of both splits fully decoded once, under the image budgets. */
export async function validate(files: ImageFolderFiles, limits: DatasetLimits): Promise<void> {
  const all = [...files.train.flat(), ...(files.test ?? []).flat()];
  await forEachConcurrent(all, VALIDATE_CONCURRENCY, async (rel) => {
    try {
      await checkDecodes(path.join(files.dir, rel), limits);
    } catch (err) {
      throw new UnprocessableError('dataset_invalid', `Dataset "${files.name}": ${rel} cannot be decoded as an image (${(err as Error).message}).`, '/file');
    }
  });
}

export async function open(files: ImageFolderFiles, { inputShape, split, resize }: LoadRequest, limits: DatasetLimits): Promise<SplitReader> {
  const perClass = files[split];
  const samples = perClass ? interleave(perClass) : [];
  if (samples.length === 0) throw splitEmpty(files.name, split);

  // Without a model shape, use the first training image's, as describe() reports it, so the
  // train and test splits of one dataset always agree.
  const firstImage = files.train[0][0];
  const shape = inputShape ?? (await readImageShape(path.join(files.dir, firstImage), limits).catch((err) => { throw undecodable(files, firstImage, err); }));
  if (!IMAGE_CHANNELS.includes(shape[2])) {
    throw new UnprocessableError(
      'dataset_shape_mismatch',
      `Dataset "${files.name}" holds images, which decode to 1 (grayscale) or 3 (RGB) channels, but the model's input ${formatShape(shape)} has ${shape[2]}.`,
      DATASET_PARAM,
      { modelShape: shape },
    );
  }
  const decodeAll = (sink: SampleSink, limit = samples.length) =>
    forEachConcurrent(samples.slice(0, limit), LOAD_CONCURRENCY, async ({ file }, i) => {
      const bytes = await decodeImage(path.join(files.dir, file), shape, limits, resize).catch((err) => { throw undecodable(files, file, err); });
      await sink(i, bytes);
    });
  return { count: samples.length, shape, labels: Int32Array.from(samples, (s) => s.label), classes: files.classes, costly: true, decodeAll };
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

export const imageFolderFormat: DatasetFormat<ImageFolderFiles> = {
  name: 'image-folder',
  noun: 'image folders',
  expected: 'image folders train/<class>/*.{png,jpg,webp,gif,tiff} (optionally test/<class>/*), or <class>/*.{png,jpg,webp,gif,tiff}',
  detect,
  describe,
  validate,
  open,
};
