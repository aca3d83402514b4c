import type { DatasetFiles, DatasetFormat } from '../types';
import { idxFormat } from './idx';
import { imageFolderFormat } from './image-folder';
import { labelsCsvFormat } from './labels-csv';

/**
 * The dataset formats graft reads, in detection order (the first whose detect() claims a folder
 * wins). A new format is one file implementing DatasetFormat and one line here.
 */
export const DATASET_FORMATS: readonly DatasetFormat[] = [
  idxFormat as DatasetFormat,
  // Before image folders: its images may sit in a folder that would look like a class folder.
  labelsCsvFormat as DatasetFormat,
  imageFolderFormat as DatasetFormat,
];

export const DATASET_FORMAT_NAMES: readonly string[] = DATASET_FORMATS.map((f) => f.name);

/** The format that produced `files` (their `format` field names it). */
export function formatOf(files: DatasetFiles): DatasetFormat {
  const format = DATASET_FORMATS.find((f) => f.name === files.format);
  if (!format) throw new Error(`unknown dataset format ${files.format}`);
  return format;
}

/** "Expected <what each format expects, joined>.": the help every "not a dataset" message ends with. */
export const EXPECTED_FILES = `Expected ${DATASET_FORMATS.map((f) => f.expected).join(', or ')}.`;
