/**
 * Datasets under DATA_DIR/tenants/<tenant>/datasets/<name>/. The format is detected from the files by the format
 * registry (formats/): each format detects, describes, validates and loads its own datasets.
 *
 *   idx           train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz]
 *                 [t10k-images-idx3-ubyte[.gz] + t10k-labels-idx1-ubyte[.gz]]
 *   image-folder  train/<class>/*.{png,jpg,jpeg} [test/<class>/*]   or   <class>/*.{png,jpg,jpeg}
 *
 * Describing reads headers and listings only, once (stored, see description-store.ts);
 * validating and loading decode everything, under the budgets of limits.ts.
 */
export * from './types';
export * from './limits';
export { DATASET_FORMATS, DATASET_FORMAT_NAMES, EXPECTED_FILES, formatOf } from './formats';
export { locateDataset, scanDataset } from './scan';
export { DatasetCatalog, describeDatasetFolder, type DatasetDescription, type DatasetFolderDescription, type DatasetSummary } from './catalog';
export { validateDatasetFolder } from './validate';
export { loadDataset, type LoadOptions } from './load';
export { openSplit } from './load';
export { openSamples, contentStamp, CACHE_DIR, type SampleStore, type SampleStoreOrigin, type OpenSamplesOptions } from './sample-cache';
export { decodeImage, ImageTooLargeError } from './images';
