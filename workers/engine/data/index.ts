/** The training side's data API: plain typed arrays in, no TensorFlow here. */
export { loadDataset, type LoadOptions, type LoadedDataset } from './load';
export { Random, shuffleInPlace, stratifiedSplit, type RandomState, type SplitIndices } from './random';
