import { DEFAULT_CONFIG, type Config } from '../../config';
import type { DatasetLimits } from './types';

export type DatasetLimitsConfig = Pick<Config, 'DATASET_MAX_BYTES' | 'IMAGE_MAX_PIXELS' | 'IMAGE_MAX_DIMENSION'>;

export function datasetLimits(config: DatasetLimitsConfig): DatasetLimits {
  return { maxFileBytes: config.DATASET_MAX_BYTES, imageMaxPixels: config.IMAGE_MAX_PIXELS, imageMaxDimension: config.IMAGE_MAX_DIMENSION };
}

/** The configuration's defaults, for callers not handed a config (tests, scripts). */
export const DEFAULT_DATASET_LIMITS: DatasetLimits = datasetLimits(DEFAULT_CONFIG);
