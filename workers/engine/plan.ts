import * as tf from '@tensorflow/tfjs';
import type { JobPlan, PlanLayer } from '../../src/spec/plan';
import type { JobSpec } from '../../src/spec/schema';
import { augments } from '../../src/spec/preprocess';
import { ensureCpuBackend } from './cpu';
import { planFeatureSplit } from './feature-cache';
import { UnprocessableError } from '../../src/errors';
import type { ModelBudget } from '../../src/untrusted/protocol';
import { buildTarget, dispose, type SourceCheckpoint } from './model';
import { withShapeOnlyWeights } from './shape-only';

/**
 * A dry run of a job: the target network the worker would build (the same code path, without
 * weight values and without training), its layer table, what would be restored, frozen and
 * trained at which rate, and whether feature caching applies. Weights are shape-only placeholders
 * (shape-only.ts): a plan allocates no weight memory and runs no initialiser, so its cost does not
 * grow with the network's size, and the budget below is checked before anything trains.
 */
export interface PlanInput {
  datasetShape: [number, number, number] | null;
  numClasses: number;
  /** Topology and weight shapes of the source (transfer jobs). */
  loadSource(name: string): Promise<SourceCheckpoint>;
  /** Limits a worker can train within; absent = unlimited (engine tests). */
  budget?: ModelBudget;
}

const BYTES_PER_FLOAT = 4;

/** Builds the plan, or throws the GraftError the job would fail with. */
export async function planJob(spec: JobSpec, input: PlanInput): Promise<JobPlan> {
  await ensureCpuBackend();
  // A plan never needs weight values (and shape-only placeholders cannot take them).
  const loadSource = async (name: string): Promise<SourceCheckpoint> => {
    const source = await input.loadSource(name);
    return { modelTopology: source.modelTopology, weights: new Map([...source.weights].map(([n, w]) => [n, { shape: w.shape, dtype: w.dtype }])) };
  };
  const target = await withShapeOnlyWeights(() => buildTarget(spec, { ...input, loadSource }));
  try {
    const model = target.model;
    if (input.budget) checkBudget(model, input.budget);
    const restoredWeights = new Set(target.restore?.restored ?? []);
    const layers: PlanLayer[] = model.layers
      .filter((l) => l.getClassName() !== 'InputLayer')
      .map((l) => ({
        name: l.name,
        className: l.getClassName(),
        outputShape: l.outputShape as PlanLayer['outputShape'],
        params: l.countParams(),
        restored: l.weights.some((w) => restoredWeights.has(w.originalName)),
        frozen: target.frozen.includes(l.name),
        lrMultiplier: target.lrMultipliers[l.name] ?? null,
      }));
    const count = (weights: tf.LayerVariable[]) => weights.reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
    const total = model.countParams();
    const trainable = model.layers.filter((l) => target.lrMultipliers[l.name] !== undefined).reduce((n, l) => n + count(l.trainableWeights), 0);
    const split = planFeatureSplit(model);
    return {
      task: target.task,
      inputShape: target.inputShape,
      layers,
      weights: { restored: target.restore?.restored ?? [], skipped: target.restore?.skipped ?? [], mismatched: target.restore?.mismatched ?? [] },
      params: { total, trainable, frozen: total - trainable },
      featureCache: featureCachePlan(spec, split?.boundaryLayer ?? null),
    };
  } finally {
    dispose(target.model);
  }
}

/** Augmentation changes the frozen prefix's input every batch: its features cannot be computed once. */
function featureCachePlan(spec: JobSpec, boundaryLayer: string | null): JobPlan['featureCache'] {
  if (boundaryLayer && augments(spec.training?.augment)) {
    return { applies: false, boundaryLayer, reason: 'training.augment changes the frozen prefix\'s input every batch, so feature caching is off for this job.' };
  }
  return { applies: boundaryLayer !== null, boundaryLayer };
}

const product = (dims: readonly (number | null)[]) => dims.reduce<number>((n, d) => n * (d ?? 1), 1);

/** Floats one sample produces at a layer's output(s), without the batch dimension. */
function activationFloats(layer: tf.layers.Layer): number {
  const shape = layer.outputShape as (number | null)[] | (number | null)[][];
  const outputs = Array.isArray(shape[0]) ? (shape as (number | null)[][]) : [shape as (number | null)[]];
  return outputs.reduce((n, s) => n + product(s.slice(1)), 0);
}

/** A network a worker could not hold is refused at submission, naming the layer that dominates. */
function checkBudget(model: tf.LayersModel, budget: ModelBudget): void {
  const largest = (measure: (l: tf.layers.Layer) => number) =>
    model.layers.reduce((best, l) => (measure(l) > best.value ? { name: l.name, value: measure(l) } : best), { name: '', value: -1 });
  const params = model.countParams();
  if (params > budget.maxParams) {
    const top = largest((l) => l.countParams());
    throw new UnprocessableError(
      'model_too_large',
      `The network has ${params.toLocaleString('en-US')} parameters, over the limit of ${budget.maxParams.toLocaleString('en-US')} (MODEL_MAX_PARAMS); layer "${top.name}" alone has ${top.value.toLocaleString('en-US')}.`,
      '/model',
      { limit: 'MODEL_MAX_PARAMS', value: params, max: budget.maxParams, layer: top.name, layerValue: top.value },
    );
  }
  const bytes = model.layers.reduce((n, l) => n + activationFloats(l), 0) * BYTES_PER_FLOAT;
  if (bytes > budget.maxActivationBytes) {
    const top = largest(activationFloats);
    throw new UnprocessableError(
      'model_too_large',
      `One sample needs ${bytes.toLocaleString('en-US')} bytes of activations through the network, over the limit of ${budget.maxActivationBytes.toLocaleString('en-US')} (MODEL_MAX_ACTIVATION_BYTES); layer "${top.name}" outputs ${(top.value * BYTES_PER_FLOAT).toLocaleString('en-US')} bytes per sample.`,
      '/model',
      { limit: 'MODEL_MAX_ACTIVATION_BYTES', value: bytes, max: budget.maxActivationBytes, layer: top.name, layerValue: top.value * BYTES_PER_FLOAT },
    );
  }
}
