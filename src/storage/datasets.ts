import { promises as fs } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { Type, type Static } from 'typebox';
import { GraftError, NotFoundError, UnprocessableError, isGraftError } from '../errors';
import { readIdxFile, readIdxHeader } from './idx';
import type { DataLayout } from './layout';
import { NAME_PATTERN, isValidName } from './names';

/**
 * Datasets under DATA_DIR/datasets/<name>/ (DESIGN §3). The format is detected from the files:
 *
 *   idx           train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz]
 *                 [t10k-images-idx3-ubyte[.gz] + t10k-labels-idx1-ubyte[.gz]]
 *   image-folder  train/<class>/*.{png,jpg,jpeg} [test/<class>/*]   or   <class>/*.{png,jpg,jpeg}
 *
 * This module serves the API, so it reads headers and listings only: no image is decoded and
 * no IDX image file is inflated (label files are read whole; they are one byte per sample).
 * The training side (workers/engine/data) loads the pixels from the same scan.
 */

export const DATASET_FORMATS = ['idx', 'image-folder'] as const;
export type DatasetFormat = (typeof DATASET_FORMATS)[number];
/** [height, width, channels] of one sample. */
export type ImageShape = [number, number, number];
export type SplitName = 'train' | 'test';

/** The JSON pointer of the dataset in a job spec: where a user fixes a wrong choice of dataset. */
export const DATASET_PARAM = '/dataset/name';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);
const IDX_FILE = /^(train|t10k)-(images-idx[34]|labels-idx1)-ubyte(\.gz)?$/;
const IDX_PREFIX: Record<SplitName, string> = { train: 'train', test: 't10k' };
const SPLIT_FOLDERS: readonly SplitName[] = ['train', 'test'];
const EXPECTED_FILES =
  'Expected train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz] (optionally t10k-images-idx3-ubyte[.gz] + ' +
  't10k-labels-idx1-ubyte[.gz]), or image folders train/<class>/*.{png,jpg,jpeg} (optionally test/<class>/*), or <class>/*.{png,jpg,jpeg}.';

// ---------------------------------------------------------------------------------------------
// Response schemas (the API uses them for validation and the OpenAPI document).

const ImageShapeSchema = Type.Array(Type.Integer({ minimum: 1 }), { minItems: 3, maxItems: 3, description: '[height, width, channels]' });

const SplitSchema = Type.Object(
  {
    count: Type.Integer({ minimum: 0, description: 'Samples in the split.' }),
    perClass: Type.Array(Type.Integer({ minimum: 0 }), { description: 'Samples per class, in the order of `classes`.' }),
  },
  { additionalProperties: false },
);

const ErrorBodySchema = Type.Object(
  { code: Type.String(), message: Type.String(), param: Type.Union([Type.String(), Type.Null()]) },
  { additionalProperties: false },
);

const FormatSchema = Type.Enum([...DATASET_FORMATS], { description: 'Detected from the files (DESIGN §3).' });
const InputShapeDescription =
  'idx: the stored [rows, cols, channels]. image-folder: the first image\'s size and channels (1 if grayscale, else 3; alpha ' +
  'is dropped), null if that image cannot be read; training resizes every image to the model input.';

export const DatasetDescriptionSchema = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN }),
    format: FormatSchema,
    inputShape: Type.Union([ImageShapeSchema, Type.Null()], { description: InputShapeDescription }),
    classes: Type.Array(Type.String(), {
      description: 'Class names; a label is an index into this list. idx: "0".."<largest label>"; image-folder: the sorted class folder names.',
    }),
    numClasses: Type.Integer({ minimum: 1 }),
    splits: Type.Object({ train: SplitSchema, test: Type.Optional(SplitSchema) }, { additionalProperties: false }),
    sizeBytes: Type.Integer({ minimum: 0, description: 'Bytes of all files in the dataset folder.' }),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false, description: 'A dataset under datasets/<name>/.' },
);

export const DatasetSummarySchema = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN }),
    format: Type.Union([FormatSchema, Type.Null()]),
    inputShape: Type.Union([ImageShapeSchema, Type.Null()], { description: InputShapeDescription }),
    numClasses: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
    trainCount: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
    testCount: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'null when the dataset has no test split.' }),
    sizeBytes: Type.Integer({ minimum: 0 }),
    createdAt: Type.String({ format: 'date-time' }),
    error: Type.Union([ErrorBodySchema, Type.Null()], {
      description: 'Why the dataset cannot be used (e.g. dataset_invalid); the other fields that need a valid dataset are then null.',
    }),
  },
  { additionalProperties: false },
);

export type DatasetDescription = Omit<Static<typeof DatasetDescriptionSchema>, 'inputShape'> & { inputShape: ImageShape | null };
export type DatasetSummary = Omit<Static<typeof DatasetSummarySchema>, 'inputShape'> & { inputShape: ImageShape | null };

// ---------------------------------------------------------------------------------------------
// Scanning: which files make up a dataset. Paths are relative to the dataset folder.

export interface IdxSplitFiles {
  images: string;
  labels: string;
}

export interface IdxFiles {
  format: 'idx';
  name: string;
  dir: string;
  train: IdxSplitFiles;
  test: IdxSplitFiles | null;
}

export interface ImageFolderFiles {
  format: 'image-folder';
  name: string;
  dir: string;
  /** Sorted class folder names. */
  classes: string[];
  /** Image files per class (index = label), sorted. */
  train: string[][];
  test: string[][] | null;
}

export type DatasetFiles = IdxFiles | ImageFolderFiles;

export function datasetInvalid(name: string, message: string): UnprocessableError {
  return new UnprocessableError('dataset_invalid', `Dataset "${name}": ${message}`);
}

/** How a file of a dataset is named in messages: never the server's absolute path. */
export function displayPath(files: DatasetFiles, rel: string): string {
  return `${files.name}/${rel}`;
}

/** Finds dataset `name` and scans its files; throws dataset_not_found or dataset_invalid. */
export async function locateDataset(layout: DataLayout, name: string): Promise<DatasetFiles> {
  const dir = layout.datasetDir(name, DATASET_PARAM);
  const stat = await fs.stat(dir).catch(() => null);
  if (!stat?.isDirectory()) {
    throw new NotFoundError('dataset_not_found', `Dataset "${name}" does not exist (looked for datasets/${name}/ in the data directory).`, DATASET_PARAM);
  }
  return scanDataset(dir, name);
}

async function scanDataset(dir: string, name: string): Promise<DatasetFiles> {
  const entries = await visibleEntries(dir);
  // Symlinks are neither files nor directories here on purpose: they could lead outside DATA_DIR.
  const idxNames = entries.filter((e) => e.isFile() && IDX_FILE.test(e.name)).map((e) => e.name);
  if (idxNames.length > 0) return scanIdx(dir, name, idxNames);
  const folders = entries.filter((e) => e.isDirectory()).map((e) => e.name);
  if (folders.length > 0) return scanImageFolder(dir, name, folders);
  throw datasetInvalid(name, `it holds neither IDX files nor image folders. ${EXPECTED_FILES}`);
}

async function visibleEntries(dir: string) {
  // Hidden entries (.DS_Store, editor swap files) are never data.
  return (await fs.readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.'));
}

function scanIdx(dir: string, name: string, idxNames: string[]): IdxFiles {
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
      throw datasetInvalid(name, `${images ?? labels} has no partner: add ${missing}. ${EXPECTED_FILES}`);
    }
    return null;
  };
  const train = splitFiles('train');
  if (!train) throw datasetInvalid(name, `it has ${idxNames.join(', ')} but no training files. ${EXPECTED_FILES}`);
  return { format: 'idx', name, dir, train, test: splitFiles('test') };
}

async function scanImageFolder(dir: string, name: string, folders: string[]): Promise<ImageFolderFiles> {
  let train: Map<string, string[]>;
  let test: Map<string, string[]> | null = null;
  if (folders.includes('train')) {
    const strays = folders.filter((f) => !SPLIT_FOLDERS.includes(f as SplitName));
    if (strays.length > 0) {
      throw datasetInvalid(name, `it has a train/ folder and also ${strays.map((f) => `${f}/`).join(', ')}: put class folders under train/ (and test/). ${EXPECTED_FILES}`);
    }
    train = await scanClasses(dir, 'train', name);
    if (folders.includes('test')) test = await scanClasses(dir, 'test', name);
  } else if (folders.includes('test')) {
    throw datasetInvalid(name, `it has a test/ folder but no train/ folder. ${EXPECTED_FILES}`);
  } else {
    train = await scanClasses(dir, '', name);
  }

  const classes = [...train.keys()];
  const trainPrefix = folders.includes('train') ? 'train/' : '';
  for (const [cls, files] of train) {
    // A class without training images would be an output the model can never learn.
    if (files.length === 0) throw datasetInvalid(name, `class folder ${trainPrefix}${cls}/ holds no .png/.jpg/.jpeg images.`);
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
async function scanClasses(dir: string, sub: string, name: string): Promise<Map<string, string[]>> {
  const classNames = (await visibleEntries(path.join(dir, sub)))
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  if (classNames.length === 0) throw datasetInvalid(name, `${sub ? `${sub}/` : 'the folder'} holds no class folders. ${EXPECTED_FILES}`);
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

// ---------------------------------------------------------------------------------------------
// Headers: shapes, labels and counts.

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

/** Reads image headers and whole label files; checks that images, labels and splits agree. */
export async function inspectIdx(files: IdxFiles): Promise<IdxInfo> {
  const [train, test] = await Promise.all([inspectIdxSplit(files, files.train), files.test ? inspectIdxSplit(files, files.test) : null]);
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

async function inspectIdxSplit(files: IdxFiles, split: IdxSplitFiles): Promise<IdxSplitInfo> {
  const { dims } = await readIdxHeader(path.join(files.dir, split.images), displayPath(files, split.images));
  const [count, shape] = idxImageShape(dims, files, split.images);
  const labels = await readIdxFile(path.join(files.dir, split.labels), displayPath(files, split.labels));
  if (labels.dims.length !== 1 || labels.dims[0] !== count) {
    throw datasetInvalid(files.name, `${split.labels} has dimensions [${labels.dims.join(', ')}] but ${split.images} holds ${count} images: expected [${count}].`);
  }
  return { files: split, count, shape, labels: labels.data };
}

/** [n, rows, cols] (idx3) or [n, rows, cols, channels] (idx4) → n and the sample shape. */
export function idxImageShape(dims: number[], files: IdxFiles, rel: string): [number, ImageShape] {
  const [n, rows, cols, channels = 1] = dims;
  if ((dims.length !== 3 && dims.length !== 4) || rows < 1 || cols < 1 || channels < 1) {
    throw datasetInvalid(
      files.name,
      `${rel} has dimensions [${dims.join(', ')}]; image files must be [n, rows, cols] (idx3) or [n, rows, cols, channels] (idx4) with non-zero sizes.`,
    );
  }
  return [n, [rows, cols, channels]];
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * The shape an image decodes to by default: its size after EXIF orientation, and 1 channel if it
 * is grayscale, else 3 (alpha is dropped, other colour spaces become sRGB).
 */
export async function readImageShape(file: string): Promise<ImageShape> {
  const meta = await sharp(file).metadata();
  const colourChannels = meta.channels - (meta.hasAlpha ? 1 : 0);
  return [meta.autoOrient.height, meta.autoOrient.width, colourChannels === 1 ? 1 : 3];
}

function histogram(labels: ArrayLike<number>, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}

// ---------------------------------------------------------------------------------------------
// The catalog the API uses.

export class DatasetCatalog {
  constructor(private readonly layout: DataLayout) {}

  /** True if datasets/<name>/ is a folder (valid or not); false for names that are not valid names. */
  async exists(name: string): Promise<boolean> {
    if (!isValidName(name)) return false;
    const stat = await fs.stat(this.layout.datasetDir(name)).catch(() => null);
    return stat?.isDirectory() ?? false;
  }

  async describe(name: string): Promise<DatasetDescription> {
    const files = await locateDataset(this.layout, name);
    const [content, meta] = await Promise.all([describeContent(files), folderMeta(files.dir)]);
    return { name, ...content, ...meta };
  }

  /** Every dataset, sorted by name. A broken dataset is listed with its error rather than hiding the others. */
  async list(): Promise<DatasetSummary[]> {
    const entries = await fs.readdir(this.layout.datasetsDir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    const names = entries.filter((e) => e.isDirectory() && isValidName(e.name)).map((e) => e.name).sort();
    const summaries = await Promise.all(names.map((name) => this.summarize(name)));
    return summaries.filter((s): s is DatasetSummary => s !== null);
  }

  /** null if the dataset was deleted while listing. */
  private async summarize(name: string): Promise<DatasetSummary | null> {
    try {
      const d = await this.describe(name);
      return {
        name,
        format: d.format,
        inputShape: d.inputShape,
        numClasses: d.numClasses,
        trainCount: d.splits.train.count,
        testCount: d.splits.test?.count ?? null,
        sizeBytes: d.sizeBytes,
        createdAt: d.createdAt,
        error: null,
      };
    } catch (err) {
      if (!isGraftError(err)) throw err;
      if (err.code === 'dataset_not_found') return null;
      const meta = await folderMeta(this.layout.datasetDir(name));
      return { name, format: null, inputShape: null, numClasses: null, trainCount: null, testCount: null, ...meta, error: errorBody(err) };
    }
  }
}

function errorBody(err: GraftError) {
  return { code: err.code, message: err.message, param: err.param };
}

type DatasetContent = Pick<DatasetDescription, 'format' | 'inputShape' | 'classes' | 'numClasses' | 'splits'>;

async function describeContent(files: DatasetFiles): Promise<DatasetContent> {
  if (files.format === 'idx') {
    const info = await inspectIdx(files);
    const n = info.classes.length;
    const split = (s: IdxSplitInfo) => ({ count: s.count, perClass: histogram(s.labels, n) });
    return {
      format: 'idx',
      inputShape: info.shape,
      classes: info.classes,
      numClasses: n,
      splits: { train: split(info.train), ...(info.test ? { test: split(info.test) } : {}) },
    };
  }
  const split = (perClass: string[][]) => {
    const counts = perClass.map((f) => f.length);
    return { count: counts.reduce((a, b) => a + b, 0), perClass: counts };
  };
  // Unreadable first image: report the shape as unknown; decoding it at training time names the file.
  const inputShape = await readImageShape(path.join(files.dir, files.train[0][0])).catch(() => null);
  return {
    format: 'image-folder',
    inputShape,
    classes: files.classes,
    numClasses: files.classes.length,
    splits: { train: split(files.train), ...(files.test ? { test: split(files.test) } : {}) },
  };
}

async function folderMeta(dir: string): Promise<{ sizeBytes: number; createdAt: string }> {
  const [stat, sizeBytes] = await Promise.all([fs.stat(dir), folderSize(dir)]);
  // birthtime is 0 on filesystems that do not record it.
  const created = stat.birthtimeMs > 0 ? stat.birthtime : stat.mtime;
  return { sizeBytes, createdAt: created.toISOString() };
}

async function folderSize(dir: string): Promise<number> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  // stat opens no file descriptor, so an unbounded fan-out only queues work on libuv's pool.
  const sizes = await Promise.all(
    entries.map((e) => {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) return folderSize(p);
      if (e.isFile()) return fs.stat(p).then((s) => s.size);
      return 0;
    }),
  );
  return sizes.reduce((a, b) => a + b, 0);
}
