/**
 * The training side's data API: plain typed arrays in, no TensorFlow here. Loading is the
 * dataset format registry's job (src/storage/datasets/formats), shared with the API's checks.
 */
export { loadDataset, type LoadOptions, type LoadedDataset } from '../../../src/storage/datasets';
export { Random, shuffleInPlace, stratifiedSplit, type RandomState, type SplitIndices } from './random';
