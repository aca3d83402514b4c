import { promises as fs } from 'node:fs';
import type { DataLayout } from '../layout';
import { visibleEntries } from './entries';
import { DATASET_FORMATS, EXPECTED_FILES } from './formats';
import { DATASET_PARAM, datasetInvalid, datasetNotFound, type DatasetFiles } from './types';

/** Finds dataset `name` and scans its files; throws dataset_not_found or dataset_invalid. */
export async function locateDataset(layout: DataLayout, name: string): Promise<DatasetFiles> {
  const dir = layout.datasetDir(name, DATASET_PARAM);
  const stat = await fs.stat(dir).catch(() => null);
  if (!stat?.isDirectory()) {
    throw datasetNotFound(name);
  }
  return scanDataset(dir, name);
}

/** Asks each format in turn whether the folder is one of its datasets. */
export async function scanDataset(dir: string, name: string): Promise<DatasetFiles> {
  const entries = await visibleEntries(dir);
  for (const format of DATASET_FORMATS) {
    const files = await format.detect({ dir, name, entries, expected: EXPECTED_FILES });
    if (files) return files;
  }
  const nouns = DATASET_FORMATS.map((f) => f.noun);
  const none = nouns.length >= 2 ? `neither ${nouns.slice(0, -1).join(', ')} nor ${nouns[nouns.length - 1]}` : `no ${nouns[0]}`;
  throw datasetInvalid(name, `it holds ${none}. ${EXPECTED_FILES}`);
}
