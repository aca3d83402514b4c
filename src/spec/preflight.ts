import { ConflictError, GraftError, UnprocessableError } from '../errors';
import { planArchitecture } from './architectures';
import { checkSpec } from './check';
import { topologyLayerNames } from './keras-topology';
import { compileUserRegex } from './regex';
import { compileLrMultipliers, frozenErrors, type NamedShape } from './selection';
import type { JobSpec } from './schema';

/**
 * What submission can know without TensorFlow: the pure checks plus the storage facts (does the
 * dataset exist, does the restore regex select any weight of the source, do the frozen layers
 * exist...). The worker repeats the full check with the real network; this catches the typos
 * before a job waits in the queue.
 */
export interface SourceInfo {
  /** Layer names in the order the network applies them. */
  layers: string[];
  weights: NamedShape[];
}

export interface DatasetInfo {
  inputShape: number[] | null;
  numClasses: number;
}

export interface PreflightStorage {
  dataset(name: string): Promise<DatasetInfo | null>;
  checkpoint(name: string): Promise<SourceInfo | null>;
  checkpointExists(name: string): Promise<boolean>;
}

export interface PreflightReport {
  errors: GraftError[];
  warnings: string[];
  /** Layer names of the target network, when they could be determined. */
  targetLayers: string[] | null;
  /** Source weight names the restore regex selects. */
  restoreCandidates: string[];
  /** The dataset as read for the checks (null if it does not exist), so nothing reads it twice. */
  dataset: DatasetInfo | null;
}

const SAMPLE_NAMES = 8;

export function defaultHeadName(index: number, type: string): string {
  return `head_${index}_${type}`;
}

export async function preflight(spec: JobSpec, storage: PreflightStorage): Promise<PreflightReport> {
  const errors: GraftError[] = checkSpec(spec);
  const warnings: string[] = [];
  let targetLayers: string[] | null = null;
  let restoreCandidates: string[] = [];

  const dataset = await storage.dataset(spec.dataset.name);
  if (!dataset) {
    errors.push(new UnprocessableError('dataset_not_found', `There is no dataset "${spec.dataset.name}"; GET /v1/datasets lists them.`, '/dataset/name'));
  }

  if (spec.type === 'transfer' && spec.source) {
    const source = await storage.checkpoint(spec.source.checkpoint);
    if (!source) {
      errors.push(new UnprocessableError('checkpoint_not_found', `There is no checkpoint "${spec.source.checkpoint}"; GET /v1/checkpoints lists them.`, '/source/checkpoint'));
    } else {
      restoreCandidates = selectRestore(spec, source, errors);
      targetLayers = transferLayers(spec, source, errors);
    }
  } else if (spec.type === 'pretrain' && spec.model?.architecture && dataset) {
    const shape = (spec.model.options?.inputShape ?? dataset.inputShape) as [number, number, number] | null;
    if (shape) {
      try {
        targetLayers = planArchitecture(spec.model.architecture, spec.model.options ?? {}, shape, Math.max(dataset.numClasses, 1)).layers.map((l) => l.name);
      } catch (err) {
        if (err instanceof GraftError) errors.push(err);
        else throw err;
      }
    }
  } else if (spec.type === 'pretrain' && spec.model?.topology) {
    targetLayers = topologyLayerNames(spec.model.topology as Record<string, unknown>);
  }

  if (targetLayers) checkLayerSelectors(spec, targetLayers, errors, warnings);

  if (await storage.checkpointExists(spec.output.checkpoint)) {
    errors.push(new ConflictError('checkpoint_exists', `A checkpoint named "${spec.output.checkpoint}" already exists; checkpoints are immutable, pick another name.`, '/output/checkpoint'));
  }
  return { errors, warnings, targetLayers, restoreCandidates, dataset };
}

function selectRestore(spec: JobSpec, source: SourceInfo, errors: GraftError[]): string[] {
  let re: RegExp;
  try {
    re = compileUserRegex(spec.source!.restore ?? '.*', '/source/restore');
  } catch {
    return []; // already reported by checkSpec
  }
  const selected = source.weights.filter((w) => re.test(w.name)).map((w) => w.name);
  if (selected.length === 0) {
    const sample = source.weights.slice(0, SAMPLE_NAMES).map((w) => w.name).join(', ');
    errors.push(
      new UnprocessableError('restore_matches_nothing', `The restore regex ${JSON.stringify(spec.source!.restore)} selects no weight of "${spec.source!.checkpoint}"; its weights are named like: ${sample}.`, '/source/restore'),
    );
  }
  return selected;
}

function transferLayers(spec: JobSpec, source: SourceInfo, errors: GraftError[]): string[] | null {
  if (spec.model?.topology) return topologyLayerNames(spec.model.topology as Record<string, unknown>);
  let kept = source.layers;
  const cut = spec.model?.cut;
  if (cut) {
    const at = source.layers.indexOf(cut);
    if (at < 0) {
      errors.push(new UnprocessableError('unknown_layer', `The source has no layer "${cut}"; its layers are: ${source.layers.join(', ')}.`, '/model/cut'));
      return null;
    }
    kept = source.layers.slice(0, at + 1);
  }
  const head = (spec.model?.head ?? []).map((l, i) => l.name ?? defaultHeadName(i, l.type));
  head.forEach((name, i) => {
    if (kept.includes(name)) {
      errors.push(new UnprocessableError('duplicate_layer_name', `The head layer name "${name}" is already used by a kept source layer.`, `/model/head/${i}/name`));
    }
  });
  return [...kept, ...head];
}

function checkLayerSelectors(spec: JobSpec, layers: string[], errors: GraftError[], warnings: string[]): void {
  try {
    errors.push(...frozenErrors(layers, spec.freeze as string | string[] | undefined));
  } catch {
    /* an invalid freeze regex: reported by checkSpec */
  }
  for (const { pattern, multiplier } of safeLrRules(spec)) {
    if (!layers.some((l) => pattern.test(l))) warnings.push(`The lrMultipliers regex ${JSON.stringify(pattern.source)} (x${multiplier}) matches no layer; it has no effect.`);
  }
}

/** The lrMultipliers rules, or none if one does not compile (checkSpec reports that). */
function safeLrRules(spec: JobSpec) {
  try {
    return compileLrMultipliers(spec.training?.lrMultipliers);
  } catch {
    return [];
  }
}
