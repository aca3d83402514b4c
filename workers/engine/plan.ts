import * as tf from '@tensorflow/tfjs';
import type { JobPlan, PlanLayer } from '../../src/spec/plan';
import type { JobSpec } from '../../src/spec/schema';
import { ensureCpuBackend } from './cpu';
import { planFeatureSplit } from './feature-cache';
import { buildTarget, dispose, type SourceCheckpoint } from './model';

/**
 * A dry run of a job: the target network the worker would build (the same code path, without
 * weight values and without training), its layer table, what would be restored, frozen and
 * trained at which rate, and whether feature caching applies. Runs on the pure-JS cpu backend:
 * building a network allocates its weights but computes nothing.
 */
export interface PlanInput {
  datasetShape: [number, number, number] | null;
  numClasses: number;
  /** Topology and weight shapes of the source (transfer jobs). */
  loadSource(name: string): Promise<SourceCheckpoint>;
}

/** Builds the plan, or throws the GraftError the job would fail with. */
export async function planJob(spec: JobSpec, input: PlanInput): Promise<JobPlan> {
  await ensureCpuBackend();
  const target = await buildTarget(spec, { ...input });
  try {
    const model = target.model;
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
      featureCache: { applies: split !== null, boundaryLayer: split?.boundaryLayer ?? null },
    };
  } finally {
    dispose(target.model);
  }
}
