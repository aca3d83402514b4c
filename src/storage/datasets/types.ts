import type { Dirent } from 'node:fs';
import { NotFoundError, UnprocessableError } from '../../errors';
import type { ResizePolicy } from '../../spec/preprocess';

/**
 * What every dataset format shares: the files a scan found, the content a description reports,
 * the arrays a load produces, and the contract a format implements (formats/).
 */

/** [height, width, channels] of one sample. */
export type ImageShape = [number, number, number];
export type SplitName = 'train' | 'test';

/** The JSON pointer of the dataset in a job spec: where a user fixes a wrong choice of dataset. */
export const DATASET_PARAM = '/dataset/name';

/** The files of one dataset as a format's detect() found them; paths are relative to `dir`. */
export interface DatasetFiles {
  format: string;
  name: string;
  dir: string;
}

/** The budgets user data is read under (config: DATASET_MAX_BYTES, IMAGE_MAX_PIXELS, IMAGE_MAX_DIMENSION). */
export interface DatasetLimits {
  /** Largest file once inflated (IDX), by its header and by what it really inflates to. */
  maxFileBytes: number;
  /** Most pixels of one image; larger ones are refused before they are decoded. */
  imageMaxPixels: number;
  /** Largest width or height of one image. */
  imageMaxDimension: number;
}

export interface SplitCounts {
  count: number;
  /** Samples per class, in the order of `classes`. */
  perClass: number[];
}

/** What a format reports about a dataset's content (the catalog adds name, size and time). */
export interface DatasetContent {
  format: string;
  inputShape: ImageShape | null;
  classes: string[];
  numClasses: number;
  splits: { train: SplitCounts; test?: SplitCounts };
  /** Class balance of the training split: samples per class by name, for a glance at the data. */
  classBalance?: Record<string, number>;
  /** Things the user should know that do not make the dataset unusable (heavy class imbalance). */
  warnings?: string[];
}

/** A class this many times larger than the smallest one is worth a warning: accuracy stops meaning much. */
export const IMBALANCE_WARNING_RATIO = 10;

/** The training split's class balance and any warning about it, for a format's describe(). */
export function classBalance(classes: string[], perClass: number[]): Pick<DatasetContent, 'classBalance' | 'warnings'> {
  const balance = Object.fromEntries(classes.map((c, i) => [c, perClass[i]]));
  const max = Math.max(...perClass);
  const min = Math.min(...perClass);
  const warnings: string[] = [];
  if (classes.length > 1 && (min === 0 || max / min > IMBALANCE_WARNING_RATIO)) {
    const big = classes[perClass.indexOf(max)];
    const small = classes[perClass.indexOf(min)];
    warnings.push(
      min === 0
        ? `Class "${small}" has no training samples while "${big}" has ${max}: the model cannot learn it.`
        : `Heavy class imbalance: "${big}" has ${max} training samples, "${small}" only ${min} (${Math.round(max / min)}x, above ${IMBALANCE_WARNING_RATIO}x). Accuracy will flatter a model that favours the large classes; consider per-class accuracy, more data, or a balanced subset.`,
    );
  }
  return { classBalance: balance, warnings };
}

export interface LoadRequest {
  /** The model's input; null = the dataset's own shape. */
  inputShape: ImageShape | null;
  split: SplitName;
  /** How images are brought to `inputShape` (formats that never resample ignore it). */
  resize?: ResizePolicy;
}

export interface LoadedDataset {
  /** n × h × w × c floats in [0, 1], row-major (NHWC). */
  images: Float32Array;
  shape: [number, number, number, number];
  /** Class index per sample. */
  labels: Int32Array;
  classes: string[];
}

/** Receives sample `index` of a split as uint8 HWC pixels; calls may come in any order. */
export type SampleSink = (index: number, pixels: Uint8Array) => Promise<void> | void;

/**
 * A split ready to be decoded: what it holds is known from headers and listings, the pixels
 * come from `decodeAll`, one sample at a time, so nothing needs the whole split in memory.
 */
export interface SplitReader {
  count: number;
  shape: ImageShape;
  /** Class index per sample, in sample order. */
  labels: Int32Array;
  classes: string[];
  /** True when decoding is costly (image files) and worth caching; false for data stored as pixels (IDX). */
  costly: boolean;
  /** Decodes samples 0 .. limit-1 (default: all) into `sink`. */
  decodeAll(sink: SampleSink, limit?: number): Promise<void>;
}

export interface DetectContext {
  dir: string;
  name: string;
  /** The folder's visible top-level entries (hidden files are never data; symlinks are neither files nor folders). */
  entries: Dirent[];
  /** What every format expects, for messages that tell the user what to upload instead. */
  expected: string;
}

/**
 * One dataset format. Adding a format is one file implementing this and one line in
 * formats/index.ts; nothing else switches on the format.
 */
export interface DatasetFormat<F extends DatasetFiles = DatasetFiles> {
  readonly name: string;
  /** The files it expects, e.g. "image folders train/<class>/*.png"; joined into help messages. */
  readonly expected: string;
  /** What it is called in "it holds neither ... nor ..." messages, e.g. "IDX files". */
  readonly noun: string;
  /**
   * The dataset's files if the folder is in this format, null if it is not; dataset_invalid if
   * it is but something is missing. Lists folders only: reads no file.
   */
  detect(ctx: DetectContext): Promise<F | null>;
  /** Format, shape, classes and counts from headers and listings: cheap, nothing fully decoded. */
  describe(files: F, limits: DatasetLimits): Promise<DatasetContent>;
  /** Everything a training job will read must be readable now (the upload check; runs in the untrusted-work pool). */
  validate(files: F, limits: DatasetLimits): Promise<void>;
  /** A split, resized or checked against `req.inputShape`, ready to be decoded sample by sample (no TensorFlow). */
  open(files: F, req: LoadRequest, limits: DatasetLimits): Promise<SplitReader>;
}

/** The one "no such dataset" error, for a missing name and for another tenant's alike. */
export function datasetNotFound(ref: string): NotFoundError {
  return new NotFoundError('dataset_not_found', `There is no dataset "${ref}"; GET /v1/datasets lists them.`, DATASET_PARAM);
}

export function datasetInvalid(name: string, message: string, details?: unknown): UnprocessableError {
  return new UnprocessableError('dataset_invalid', `Dataset "${name}": ${message}`, null, details);
}

/** How a file of a dataset is named in messages: never the server's absolute path. */
export function displayPath(files: DatasetFiles, rel: string): string {
  return `${files.name}/${rel}`;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function splitEmpty(name: string, split: SplitName): UnprocessableError {
  const hint = split === 'test' ? ' (add t10k-images-idx3-ubyte + t10k-labels-idx1-ubyte, or test/<class>/ folders)' : '';
  return new UnprocessableError('dataset_split_empty', `Dataset "${name}" has no ${split} samples${hint}.`, DATASET_PARAM);
}

/** pixel byte → [0, 1]; a table is both faster and exactly the same as dividing every time. */
export const BYTE_TO_UNIT = Float32Array.from({ length: 256 }, (_, i) => i / 255);
