import { UnprocessableError, type GraftError } from '../errors';
import type { PreflightStorage } from './preflight';
import { DEFAULT_MISTAKES, DEFAULT_PREDICT_TOP, type UseJobSpec } from './schema';

/**
 * What submission checks of an evaluate or predict job without TensorFlow: the checkpoint and the
 * dataset exist. Whether the split has samples and fits the model's input is the worker's check
 * (it reads the data anyway), with the same codes as training.
 */
export async function preflightUse(spec: UseJobSpec, storage: PreflightStorage): Promise<GraftError[]> {
  const errors: GraftError[] = [];
  if (!(await storage.checkpoint(spec.source.checkpoint))) {
    errors.push(new UnprocessableError('checkpoint_not_found', `There is no checkpoint "${spec.source.checkpoint}"; GET /v1/checkpoints lists them.`, '/source/checkpoint'));
  }
  if (!(await storage.dataset(spec.dataset.name))) {
    errors.push(new UnprocessableError('dataset_not_found', `There is no dataset "${spec.dataset.name}"; GET /v1/datasets lists them.`, '/dataset/name'));
  }
  return errors;
}

/** The use job as it will run: defaults written in. */
export function useDefaults(spec: UseJobSpec): UseJobSpec {
  // `dataset.split` stays as given: without it the worker takes the test split, or the only one.
  return spec.type === 'evaluate' ? { mistakes: DEFAULT_MISTAKES, ...spec } : { top: DEFAULT_PREDICT_TOP, ...spec };
}
