import { GraftError, ValidationError } from '../errors';
import { compileUserRegex } from './regex';
import type { JobSpec } from './schema';

/**
 * Checks of a schema-valid spec that need no storage: the rules that tie fields together and
 * the regexes. Pure, so the API, the plan endpoint and the worker's re-check agree exactly.
 * Returns every problem (a plan shows them all); callers that need one throw the first.
 */
export function checkSpec(spec: JobSpec): GraftError[] {
  const errors: GraftError[] = [];
  const attempt = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      if (err instanceof GraftError) errors.push(err);
      else throw err;
    }
  };

  if (spec.type === 'transfer') {
    if (!spec.source) errors.push(new ValidationError('missing_field', 'A transfer job needs `source` (the checkpoint to restore from).', '/source'));
    if (spec.model?.architecture) {
      errors.push(new ValidationError('invalid_field', '`model.architecture` builds a network from scratch: use it with type "pretrain".', '/model/architecture'));
    }
    if (spec.model?.options && !spec.model.architecture) {
      errors.push(new ValidationError('invalid_field', '`model.options` configures `model.architecture` (pretrain jobs only).', '/model/options'));
    }
    if (spec.model?.topology && (spec.model.cut || spec.model.head)) {
      errors.push(new ValidationError('invalid_field', 'Give either `model.topology` or `model.cut`/`model.head`, not both.', '/model/topology'));
    }
  } else {
    if (spec.source) errors.push(new ValidationError('invalid_field', 'A pretrain job builds its network from scratch and takes no `source`; use type "transfer" to restore weights.', '/source'));
    const hasArch = Boolean(spec.model?.architecture);
    const hasTopology = Boolean(spec.model?.topology);
    if (hasArch === hasTopology) {
      errors.push(new ValidationError('missing_field', 'A pretrain job needs exactly one of `model.architecture` (e.g. "conv-autoencoder") or `model.topology`.', '/model'));
    }
    if (spec.model?.cut || spec.model?.head) {
      errors.push(new ValidationError('invalid_field', '`model.cut` and `model.head` re-head a source network: use them with type "transfer".', spec.model?.cut ? '/model/cut' : '/model/head'));
    }
    if (spec.model?.options && !hasArch) {
      errors.push(new ValidationError('invalid_field', '`model.options` configures `model.architecture`.', '/model/options'));
    }
  }

  if (spec.source?.restore !== undefined) attempt(() => compileUserRegex(spec.source!.restore!, '/source/restore'));
  if (typeof spec.freeze === 'string') attempt(() => compileUserRegex(spec.freeze as string, '/freeze'));
  for (const key of Object.keys(spec.training?.lrMultipliers ?? {})) {
    attempt(() => compileUserRegex(key, `/training/lrMultipliers/${escapePointer(key)}`));
  }

  (spec.model?.head ?? []).forEach((layer, i) => {
    const at = `/model/head/${i}`;
    const unexpected = (field: string) => errors.push(new ValidationError('invalid_field', `\`${field}\` does not apply to a ${layer.type} layer.`, `${at}/${field}`));
    if (layer.type === 'dense') {
      if (layer.units === undefined) errors.push(new ValidationError('missing_field', 'A dense layer needs `units`.', `${at}/units`));
    } else {
      if (layer.units !== undefined) unexpected('units');
      if (layer.activation !== undefined) unexpected('activation');
      if (layer.useBias !== undefined) unexpected('useBias');
    }
    if (layer.type === 'dropout') {
      if (layer.rate === undefined) errors.push(new ValidationError('missing_field', 'A dropout layer needs `rate`.', `${at}/rate`));
    } else if (layer.rate !== undefined) unexpected('rate');
    if (layer.type !== 'batchNormalization' && layer.momentum !== undefined) unexpected('momentum');
  });
  const names = (spec.model?.head ?? []).map((l) => l.name).filter((n): n is string => Boolean(n));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) errors.push(new ValidationError('duplicate_layer_name', `Two head layers are named "${dup}".`, `/model/head/${names.lastIndexOf(dup)}/name`));

  const validationSplit = spec.dataset.validationSplit;
  const noValidation = validationSplit === 0;
  if (noValidation && spec.training?.earlyStopping) {
    errors.push(new ValidationError('invalid_field', 'Early stopping watches the validation loss: set `dataset.validationSplit` above 0.', '/training/earlyStopping'));
  }
  if (noValidation && spec.output.select === 'best') {
    errors.push(new ValidationError('invalid_field', '`output.select: "best"` picks the epoch with the lowest validation loss: set `dataset.validationSplit` above 0.', '/output/select'));
  }
  return errors;
}

/** RFC 6901 escaping for one pointer segment. */
export function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}
