import { GraftError, ValidationError } from '../errors';
import { checkHeadLayer } from './heads';
import { preprocessErrors } from './preprocess';
import { compileUserRegex } from './regex';
import type { JobSpec } from './schema';
import { reservedNameError } from '../storage/names';

/**
 * Checks of a schema-valid spec that need no storage: the rules that tie fields together and
 * the regexes. Pure, so the API, the plan endpoint and the worker's re-check agree exactly.
 * Returns every problem (a plan shows them all); callers that need one throw the first.
 */
export function checkSpec(spec: JobSpec): GraftError[] {
  return [
    ...(spec.type === 'transfer' ? transferModelErrors(spec) : pretrainModelErrors(spec)),
    ...regexErrors(spec),
    ...headErrors(spec),
    ...validationSplitErrors(spec),
    ...preprocessErrors(spec.dataset.preprocess, spec.training?.augment),
    ...outputNameErrors(spec),
  ];
}

/** The output is a new checkpoint of one's own: a reserved name (storage/names.ts) cannot be it. */
function outputNameErrors(spec: JobSpec): GraftError[] {
  const reserved = reservedNameError(spec.output.checkpoint, '/output/checkpoint');
  return reserved ? [reserved] : [];
}

/** A transfer job restores a source and may re-head it; it does not build from scratch. */
function transferModelErrors(spec: JobSpec): GraftError[] {
  const errors: GraftError[] = [];
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
  return errors;
}

/** A pretrain job builds exactly one network from scratch and restores nothing. */
function pretrainModelErrors(spec: JobSpec): GraftError[] {
  const errors: GraftError[] = [];
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
  return errors;
}

/** Every user regex compiles (and is safe to run). */
function regexErrors(spec: JobSpec): GraftError[] {
  const errors: GraftError[] = [];
  const attempt = (pattern: string, pointer: string) => {
    try {
      compileUserRegex(pattern, pointer);
    } catch (err) {
      if (err instanceof GraftError) errors.push(err);
      else throw err;
    }
  };
  if (spec.source?.restore !== undefined) attempt(spec.source.restore, '/source/restore');
  if (typeof spec.freeze === 'string') attempt(spec.freeze, '/freeze');
  for (const key of Object.keys(spec.training?.lrMultipliers ?? {})) attempt(key, `/training/lrMultipliers/${escapePointer(key)}`);
  return errors;
}

/** Each head layer against its type's rules (src/spec/heads/), and no two with one name. */
function headErrors(spec: JobSpec): GraftError[] {
  const head = spec.model?.head ?? [];
  const errors = head.flatMap((layer, i) => checkHeadLayer(layer, `/model/head/${i}`));
  const names = head.map((l) => l.name).filter((n): n is string => Boolean(n));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) errors.push(new ValidationError('duplicate_layer_name', `Two head layers are named "${dup}".`, `/model/head/${names.lastIndexOf(dup)}/name`));
  return errors;
}

/** Early stopping and best-epoch selection watch the validation loss, so they need a split. */
function validationSplitErrors(spec: JobSpec): GraftError[] {
  const errors: GraftError[] = [];
  if (spec.dataset.validationSplit !== 0) return errors;
  if (spec.training?.earlyStopping) {
    errors.push(new ValidationError('invalid_field', 'Early stopping watches the validation loss: set `dataset.validationSplit` above 0.', '/training/earlyStopping'));
  }
  if (spec.output.select === 'best') {
    errors.push(new ValidationError('invalid_field', '`output.select: "best"` picks the epoch with the lowest validation loss: set `dataset.validationSplit` above 0.', '/output/select'));
  }
  return errors;
}

/** RFC 6901 escaping for one pointer segment. */
export function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}
