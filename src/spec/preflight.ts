import { ConflictError, GraftError, UnprocessableError } from '../errors';
import { planArchitecture } from './architectures';
import { checkSpec } from './check';
import { layerListPointer, topologyLayers } from './keras-topology';
import { invalidLayerName, isValidLayerName } from './layer-names';
import { compileUserRegex, type UserRegex } from './regex';
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

/**
 * The volume as one tenant sees it. `dataset` and `checkpoint` take a spec's reference: `<name>`
 * (the tenant's own) or `public/<name>` (the shared namespace); any other `<tenant>/<name>` is
 * null, exactly like a name that does not exist. `checkpointExists` takes an output name (always
 * the tenant's own).
 */
export interface PreflightStorage {
  dataset(ref: string): Promise<DatasetInfo | null>;
  checkpoint(ref: string): Promise<SourceInfo | null>;
  checkpointExists(name: string): Promise<boolean>;
  /** The error a submission gets when the tenant is already over its storage quota (403 quota_exceeded), else null. */
  storageQuota?(): Promise<GraftError | null>;
}

/** The PreflightStorage of each tenant. */
export interface TenantStorage {
  forTenant(tenant: string): PreflightStorage;
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

/** Budgets on what a spec may ask of the API (config: MODEL_MAX_LAYERS). */
export interface PreflightLimits {
  /** Most layers a user topology (`model.topology`) may have. */
  maxLayers: number;
}

export const DEFAULT_PREFLIGHT_LIMITS: PreflightLimits = { maxLayers: 1000 };

export function defaultHeadName(index: number, type: string): string {
  return `head_${index}_${type}`;
}

export async function preflight(spec: JobSpec, storage: PreflightStorage, limits: PreflightLimits = DEFAULT_PREFLIGHT_LIMITS): Promise<PreflightReport> {
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
      targetLayers = transferLayers(spec, source, errors, limits);
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
    targetLayers = checkedTopologyLayers(spec.model.topology as Record<string, unknown>, limits, errors);
  }

  if (targetLayers) checkLayerSelectors(spec, targetLayers, errors, warnings);

  if (await storage.checkpointExists(spec.output.checkpoint)) {
    errors.push(new ConflictError('checkpoint_exists', `A checkpoint named "${spec.output.checkpoint}" already exists; checkpoints are immutable, pick another name.`, '/output/checkpoint'));
  }
  // The output checkpoint counts against the tenant's storage: refused while already over quota.
  const quota = await storage.storageQuota?.();
  if (quota) errors.push(quota);
  return { errors, warnings, targetLayers, restoreCandidates, dataset };
}

/**
 * Restore selections per source and pattern. The storage remembers a checkpoint's SourceInfo per
 * file identity, so a burst of submissions of one recipe matches its weight names once. Bounded
 * per source; a new file is a new SourceInfo, and the old one's entries go with it.
 */
const restoreSelections = new WeakMap<SourceInfo, Map<string, string[]>>();
const RESTORE_SELECTIONS_PER_SOURCE = 64;

function selectedWeights(source: SourceInfo, pattern: string, re: UserRegex): string[] {
  let bySource = restoreSelections.get(source);
  if (!bySource) restoreSelections.set(source, (bySource = new Map()));
  let selected = bySource.get(pattern);
  if (!selected) {
    selected = source.weights.filter((w) => re.test(w.name)).map((w) => w.name);
    if (bySource.size >= RESTORE_SELECTIONS_PER_SOURCE) bySource.clear();
    bySource.set(pattern, selected);
  }
  return selected;
}

function selectRestore(spec: JobSpec, source: SourceInfo, errors: GraftError[]): string[] {
  let re: UserRegex;
  const pattern = spec.source!.restore ?? '.*';
  try {
    re = compileUserRegex(pattern, '/source/restore');
  } catch {
    return []; // already reported by checkSpec
  }
  const selected = selectedWeights(source, pattern, re);
  if (selected.length === 0) {
    const sample = source.weights.slice(0, SAMPLE_NAMES).map((w) => w.name).join(', ');
    errors.push(
      new UnprocessableError('restore_matches_nothing', `The restore regex ${JSON.stringify(spec.source!.restore)} selects no weight of "${spec.source!.checkpoint}"; its weights are named like: ${sample}.`, '/source/restore'),
    );
  }
  return selected;
}

function transferLayers(spec: JobSpec, source: SourceInfo, errors: GraftError[], limits: PreflightLimits): string[] | null {
  if (spec.model?.topology) return checkedTopologyLayers(spec.model.topology as Record<string, unknown>, limits, errors);
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

const TOPOLOGY_PARAM = '/model/topology';

/**
 * The layer names of a user topology, once they are known to be safe to match regexes against
 * and to build: at most `limits.maxLayers` layers (422 `model_too_large`), every name a valid
 * layer name (422 `invalid_layer_name`, pointing into the topology). Null (with the error
 * recorded) when the topology fails either check or its layers cannot be read.
 */
export function checkedTopologyLayers(topology: Record<string, unknown>, limits: PreflightLimits, errors: GraftError[]): string[] | null {
  const layers = topologyLayers(topology);
  if (!layers) return null;
  const pointer = layerListPointer(topology);
  if (layers.length > limits.maxLayers) {
    errors.push(
      new UnprocessableError(
        'model_too_large',
        `The topology has ${layers.length} layers; at most ${limits.maxLayers} are allowed (MODEL_MAX_LAYERS).`,
        `${TOPOLOGY_PARAM}${pointer}`,
        { layers: layers.length, maxLayers: limits.maxLayers },
      ),
    );
    return null;
  }
  const names = layers.map((l) => l.name);
  const bad = names.findIndex((n) => n !== null && !isValidLayerName(n));
  if (bad >= 0) {
    errors.push(invalidLayerName(names[bad]!, `${TOPOLOGY_PARAM}${pointer}/${bad}/config/name`));
    return null;
  }
  return names.every((n): n is string => n !== null) ? names : null;
}

