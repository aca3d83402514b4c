import type { LayerSummary, WeightShape } from './manifest';
import { modelConfig, topologyLayers } from '../../spec/keras-topology';
import { allWeightSpecs, type ModelJson } from './parse';

/**
 * The layer table and input shape of a checkpoint from model.json alone (no manifest, no
 * TensorFlow): what the catalog shows for a checkpoint graft did not write.
 */

/** Nested layer configs deeper than this are not searched for layer names (guards the recursion). */
const MAX_TOPOLOGY_DEPTH = 64;
/** Row for weights whose `<layer>/` prefix names no layer of the topology. */
const UNKNOWN_CLASS = 'Unknown';
const INPUT_LAYER_CLASS = 'InputLayer';

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

interface TableLayer {
  name: string;
  className: string;
  trainable: boolean;
  config: Json;
}

/** Named top-level layers, read by the one Keras-topology reader (src/spec/keras-topology.ts). */
function tableLayers(topology: Json): TableLayer[] {
  return (topologyLayers(topology) ?? []).flatMap((layer) => {
    if (layer.name === null) return [];
    const className = layer.className ?? UNKNOWN_CLASS;
    // Configs omit `trainable` when true; InputLayers omit it but are never trainable.
    return [{ name: layer.name, className, trainable: layer.config.trainable !== false && className !== INPUT_LAYER_CLASS, config: layer.config }];
  });
}

/** Names of layers nested in a layer's config (inner models, wrapped layers): their weights belong to it. */
function nestedLayerNames(node: unknown, into: Set<string>, depth = 0): void {
  if (depth > MAX_TOPOLOGY_DEPTH) return;
  if (Array.isArray(node)) {
    for (const item of node) nestedLayerNames(item, into, depth + 1);
    return;
  }
  if (!isObject(node)) return;
  if (typeof node.class_name === 'string' && isObject(node.config) && typeof node.config.name === 'string') into.add(node.config.name);
  for (const value of Object.values(node)) nestedLayerNames(value, into, depth + 1);
}

const layerOfWeight = (weightName: string): string => weightName.split('/')[0];
/** Parameters held by `weights` (the product of each shape, summed). */
export const paramsOf = (weights: WeightShape[]): number => weights.reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1), 0);

/**
 * The layer table of a checkpoint without manifest: names and classes from the topology, weights
 * grouped by their `<layer>/` prefix. Output shapes would need the model built, so they are null.
 */
export function deriveLayers(model: ModelJson): LayerSummary[] {
  const layers = tableLayers(model.modelTopology);
  const owner = new Map<string, number>();
  layers.forEach((layer, i) => {
    const names = new Set([layer.name]);
    nestedLayerNames(layer.config, names);
    for (const n of names) if (!owner.has(n)) owner.set(n, i);
  });
  const grouped = layers.map(() => [] as WeightShape[]);
  const orphans = new Map<string, WeightShape[]>();
  for (const spec of allWeightSpecs(model)) {
    const weight = { name: spec.name, shape: [...spec.shape] };
    const prefix = layerOfWeight(spec.name);
    const i = owner.get(prefix);
    if (i !== undefined) grouped[i].push(weight);
    else orphans.set(prefix, [...(orphans.get(prefix) ?? []), weight]);
  }
  const rows: LayerSummary[] = layers.map((layer, i) => ({
    name: layer.name,
    className: layer.className,
    outputShape: null,
    params: paramsOf(grouped[i]),
    trainable: layer.trainable,
    weights: grouped[i],
  }));
  // Weights no layer claims are still listed, so the table accounts for every stored parameter.
  for (const [name, weights] of orphans) {
    rows.push({ name, className: UNKNOWN_CLASS, outputShape: null, params: paramsOf(weights), trainable: true, weights });
  }
  return rows;
}

/** Shape of one input sample from the topology's (first) input layer; null when not fully known. */
export function deriveInputShape(model: ModelJson): number[] | null {
  const topology = modelConfig(model.modelTopology);
  const layers = tableLayers(topology);
  const inputLayers = isObject(topology.config) ? topology.config.input_layers : undefined;
  const firstInput = Array.isArray(inputLayers) && Array.isArray(inputLayers[0]) ? inputLayers[0][0] : undefined;
  const layer = layers.find((l) => l.name === firstInput) ?? layers[0];
  const shape = layer?.config.batch_input_shape ?? layer?.config.batchInputShape;
  if (!Array.isArray(shape) || shape.length < 2) return null;
  const dims = shape.slice(1);
  return dims.every((d) => Number.isInteger(d) && d > 0) ? (dims as number[]) : null;
}
