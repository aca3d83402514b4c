import * as tf from '@tensorflow/tfjs';
import { UnprocessableError } from '../../src/errors';
import { planArchitecture } from '../../src/spec/architectures';
import { defaultHeadName } from '../../src/spec/preflight';
import type { JobSpec } from '../../src/spec/schema';
import { headLayerPlan } from '../../src/spec/heads';
import { buildLayer, seedTopology } from './layers';
import { compileLrMultipliers, lrMultiplierFor, planRestore, selectFrozen, type RestorePlan } from '../../src/spec/selection';

/**
 * Builds the target network of a job: a built-in architecture, a user topology, or the source's
 * topology (optionally cut and re-headed); then restores the selected source weights, freezes
 * layers and assigns learning-rate multipliers. New layers are freshly initialised from the seed.
 */
export type Task = 'classification' | 'reconstruction';
export type Shape3 = [number, number, number];

export interface SourceCheckpoint {
  modelTopology: unknown;
  /** Named weights; `values` may be absent for a dry run (a plan needs names and shapes only). */
  weights: Map<string, { shape: number[]; dtype: string; values?: Float32Array | Int32Array | Uint8Array }>;
}

export interface TargetModel {
  model: tf.LayersModel;
  task: Task;
  inputShape: Shape3;
  restore: RestorePlan | null;
  frozen: string[];
  /** Multiplier of every layer that trains (frozen layers and multiplier 0 are absent). */
  lrMultipliers: Record<string, number>;
}

export interface BuildContext {
  /** Shape the dataset would naturally give ([h, w, c]); null for image folders of mixed sizes. */
  datasetShape: Shape3 | null;
  numClasses: number;
  /** Loads the source checkpoint (transfer jobs). */
  loadSource(name: string): Promise<SourceCheckpoint>;
}

export async function buildTarget(spec: JobSpec, ctx: BuildContext): Promise<TargetModel> {
  const seed = spec.training?.seed ?? 0;
  let model: tf.LayersModel;
  let restore: RestorePlan | null = null;

  if (spec.type === 'pretrain') {
    model = spec.model?.architecture ? buildArchitecture(spec, ctx, seed) : await fromTopology(spec.model!.topology!, seed, '/model/topology');
  } else {
    const source = await ctx.loadSource(spec.source!.checkpoint);
    const full = await fromTopology(spec.model?.topology ?? source.modelTopology, seed, spec.model?.topology ? '/model/topology' : '/source/checkpoint');
    try {
      model = reHead(full, spec, seed);
    } catch (err) {
      dispose(full);
      throw err;
    }
    try {
      restore = restoreWeights(model, source, spec.source!.restore ?? '.*');
    } catch (err) {
      dispose(model);
      throw err;
    }
  }

  const inputShape = model.inputs[0].shape.slice(1) as Shape3;
  if (inputShape.length !== 3 || inputShape.some((d) => d === null)) {
    dispose(model);
    throw new UnprocessableError('unsupported_input', `The network's input is ${JSON.stringify(model.inputs[0].shape)}; graft trains image networks with an input of [height, width, channels].`, '/model');
  }
  const task = inferTask(model, inputShape);
  if (task === 'classification') checkOutputUnits(model, spec, ctx.numClasses);

  // Input layers have no weights; leaving them out keeps `^enc_conv` from matching `enc_conv1_input`.
  const layerNames = model.layers.filter((l) => l.getClassName() !== 'InputLayer').map((l) => l.name);
  let frozen: string[];
  let rules: ReturnType<typeof compileLrMultipliers>;
  try {
    frozen = selectFrozen(layerNames, spec.freeze as string | string[] | undefined);
    rules = compileLrMultipliers(spec.training?.lrMultipliers);
  } catch (err) {
    dispose(model);
    throw err;
  }
  const lrMultipliers: Record<string, number> = {};
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    if (frozen.includes(layer.name)) {
      freezeLayer(layer);
      continue;
    }
    if (layer.trainableWeights.length === 0) continue;
    const m = lrMultiplierFor(layer.name, rules);
    if (m === 0) freezeLayer(layer);
    else lrMultipliers[layer.name] = m;
  }
  if (Object.keys(lrMultipliers).length === 0) {
    dispose(model);
    throw new UnprocessableError('nothing_to_train', 'Every layer with weights is frozen (or has learning-rate multiplier 0): there is nothing to train.', '/freeze');
  }
  return { model, task, inputShape, restore, frozen, lrMultipliers };
}

function buildArchitecture(spec: JobSpec, ctx: BuildContext, seed: number): tf.LayersModel {
  const shape = (spec.model!.options?.inputShape as Shape3 | undefined) ?? ctx.datasetShape;
  if (!shape) {
    throw new UnprocessableError('input_shape_required', 'This dataset has images of several sizes: set model.options.inputShape ([height, width, channels]).', '/model/options/inputShape');
  }
  const plan = planArchitecture(spec.model!.architecture!, spec.model!.options ?? {}, shape, ctx.numClasses);
  const model = tf.sequential({ name: spec.output.checkpoint });
  model.add(tf.layers.inputLayer({ inputShape: plan.inputShape, name: 'input' }));
  plan.layers.forEach((layer) => model.add(buildLayer(layer, seed)));
  return model;
}

async function fromTopology(topology: unknown, seed: number, param: string): Promise<tf.LayersModel> {
  const seeded = seedTopology(topology, seed) as Record<string, unknown>;
  const modelTopology = (seeded.modelTopology ?? seeded) as Record<string, unknown>;
  try {
    return await tf.models.modelFromJSON({ modelTopology } as never);
  } catch (err) {
    throw new UnprocessableError('invalid_topology', `The model topology cannot be built: ${(err as Error).message}`, param);
  }
}

function reHead(full: tf.LayersModel, spec: JobSpec, seed: number): tf.LayersModel {
  const cut = spec.model?.cut;
  const head = spec.model?.head ?? [];
  if (!cut && head.length === 0) return full;
  let output: tf.SymbolicTensor;
  if (cut) {
    const layer = full.layers.find((l) => l.name === cut);
    if (!layer) {
      throw new UnprocessableError('unknown_layer', `The source has no layer "${cut}"; its layers are: ${full.layers.map((l) => l.name).join(', ')}.`, '/model/cut');
    }
    output = layer.output as tf.SymbolicTensor;
  } else {
    output = full.outputs[0];
  }
  // Names must be unique among the layers kept; a cut-away layer's name (e.g. the old
  // classifier's "fc") is free again, as in Keras.
  const taken = new Set(tf.model({ inputs: full.inputs, outputs: output }).layers.map((l) => l.name));
  head.forEach((spec, i) => {
    const name = spec.name ?? defaultHeadName(i, spec.type);
    if (taken.has(name)) throw new UnprocessableError('duplicate_layer_name', `The head layer name "${name}" is already used by a kept source layer.`, `/model/head/${i}/name`);
    taken.add(name);
    output = buildLayer(headLayerPlan(spec, name), seed).apply(output) as tf.SymbolicTensor;
  });
  const target = tf.model({ inputs: full.inputs, outputs: output, name: spec.output.checkpoint });
  // Layers cut away (e.g. an autoencoder's decoder) are not part of the target: free their weights.
  const kept = new Set(target.layers);
  for (const layer of full.layers) if (!kept.has(layer)) disposeLayer(layer);
  return target;
}

function restoreWeights(model: tf.LayersModel, source: SourceCheckpoint, restore: string): RestorePlan {
  const targetVars = new Map<string, tf.LayerVariable>();
  for (const layer of model.layers) for (const w of layer.weights) targetVars.set(w.originalName, w);
  const plan = planRestore(
    [...source.weights].map(([name, w]) => ({ name, shape: w.shape })),
    [...targetVars].map(([name, v]) => ({ name, shape: v.shape as number[] })),
    restore,
  );
  for (const name of plan.restored) {
    const w = source.weights.get(name)!;
    const values = w.values;
    if (!values) continue; // dry run
    tf.tidy(() => {
      targetVars.get(name)!.write(tf.tensor(values, w.shape, 'float32'));
    });
  }
  return plan;
}

/**
 * Keras semantics: a frozen layer does not train, and a frozen BatchNormalization also runs in
 * inference mode (uses and keeps its moving statistics). tfjs's BatchNormalization updates its
 * moving statistics whenever it is called in training mode, trainable or not, so the call is
 * wrapped to force inference.
 */
export function freezeLayer(layer: tf.layers.Layer): void {
  layer.trainable = false;
  if (layer.getClassName() === 'BatchNormalization') {
    const call = layer.call.bind(layer);
    layer.call = (inputs, kwargs) => call(inputs, { ...kwargs, training: false });
  }
}

function inferTask(model: tf.LayersModel, inputShape: Shape3): Task {
  const out = model.outputs[0].shape.slice(1);
  const sameAsInput = out.length === 3 && out.every((d, i) => d === inputShape[i]);
  return sameAsInput ? 'reconstruction' : 'classification';
}

function checkOutputUnits(model: tf.LayersModel, spec: JobSpec, numClasses: number): void {
  const out = model.outputs[0].shape;
  const units = out[out.length - 1];
  if (out.length !== 2 || units !== numClasses) {
    const head = spec.model?.head;
    const param = head?.length ? `/model/head/${head.length - 1}/units` : '/model';
    dispose(model);
    throw new UnprocessableError(
      'output_classes_mismatch',
      `The dataset has ${numClasses} classes but the network outputs ${JSON.stringify(out.slice(1))}; end the head with a dense layer of ${numClasses} units (softmax).`,
      param,
    );
  }
}

/**
 * Frees every weight of a network. A layer applied in several graphs (the target and the
 * feature-cache suffix) counts each use, so plain model.dispose() can leave its weights alive.
 */
export function dispose(model: tf.LayersModel): void {
  for (const layer of model.layers) disposeLayer(layer);
}

function disposeLayer(layer: tf.layers.Layer): void {
  const refs = () => (layer as unknown as { _refCount: number | null })._refCount;
  try {
    while ((refs() ?? 0) > 0) layer.dispose();
  } catch {
    /* never built, or already disposed */
  }
}
