import { DataLayout } from '../layout';
import { formatOf } from './formats';
import { locateDataset } from './scan';
import type { DatasetLimits } from './types';

/**
 * The upload check: everything a training job will read must be readable now (IDX headers,
 * labels and inflated sizes; every image fully decoded), under the dataset budgets. Plain
 * arguments only, so it can run in a worker thread of the untrusted-work pool.
 *
 * `dataRoot` is a DATA_DIR-shaped folder (an upload's staging folder) holding tenants/default/datasets/<name> (DataLayout(dataRoot).datasetDir).
 */
export async function validateDatasetFolder(dataRoot: string, name: string, limits: DatasetLimits): Promise<void> {
  const files = await locateDataset(new DataLayout(dataRoot), name);
  await formatOf(files).validate(files, limits);
}
