import * as tf from '@tensorflow/tfjs';
import { isStochastic } from './layers';

/**
 * Feature caching: when every layer that trains sits after a frozen, deterministic prefix, the
 * prefix computes the same features every epoch. Computing them once and training only the
 * suffix is the largest single speed-up for transfer jobs (the convs dominate the cost).
 *
 * The prefix must be deterministic in training mode: no active dropout/noise, frozen
 * BatchNormalization in inference mode (model.freezeLayer does that), and no layer after the
 * boundary may read a tensor from before it (no skip connection across the cut).
 */
export interface FeatureSplit {
  prefix: tf.LayersModel;
  suffix: tf.LayersModel;
  boundaryLayer: string;
}

interface NodeLike {
  inputTensors: tf.SymbolicTensor[];
  outputTensors: tf.SymbolicTensor[];
}

const inboundNodes = (layer: tf.layers.Layer) => (layer as unknown as { inboundNodes: NodeLike[] }).inboundNodes;

export function planFeatureSplit(model: tf.LayersModel): FeatureSplit | null {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return null;
  const layers = model.layers;
  const first = layers.findIndex((l) => l.getClassName() !== 'InputLayer' && ((l.trainable && l.trainableWeights.length > 0) || isStochastic(l)));
  // No prefix worth caching (the first real layer trains) or nothing trains at all.
  const firstReal = layers.findIndex((l) => l.getClassName() !== 'InputLayer');
  if (first <= firstReal) return null;
  const boundary = layers[first - 1];
  if (inboundNodes(boundary).length !== 1 || inboundNodes(boundary)[0].outputTensors.length !== 1) return null;
  const boundaryTensor = boundary.output as tf.SymbolicTensor;

  const input = tf.input({ shape: boundaryTensor.shape.slice(1) as number[] });
  const mapped = new Map<number, tf.SymbolicTensor>([[boundaryTensor.id, input]]);
  for (const layer of layers.slice(first)) {
    const nodes = inboundNodes(layer);
    if (nodes.length !== 1 || nodes[0].outputTensors.length !== 1) return null;
    const ins = nodes[0].inputTensors.map((t) => mapped.get(t.id));
    if (ins.some((t) => t === undefined)) return null; // reads from before the boundary
    const out = layer.apply(ins.length === 1 ? ins[0]! : (ins as tf.SymbolicTensor[])) as tf.SymbolicTensor;
    mapped.set(nodes[0].outputTensors[0].id, out);
  }
  const output = mapped.get(model.outputs[0].id);
  if (!output) return null;
  return {
    prefix: tf.model({ inputs: model.inputs, outputs: boundaryTensor }),
    suffix: tf.model({ inputs: input, outputs: output }),
    boundaryLayer: boundary.name,
  };
}

/** Runs the prefix over `x` in inference mode, in batches, into one tensor. */
export async function extractFeatures(prefix: tf.LayersModel, x: tf.Tensor, batchSize: number, onBatch?: (done: number) => Promise<void> | void): Promise<tf.Tensor> {
  const n = x.shape[0];
  const parts: tf.Tensor[] = [];
  try {
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      parts.push(tf.tidy(() => prefix.predict(x.slice(start, size)) as tf.Tensor));
      await parts[parts.length - 1].data(); // bound memory and let the event loop breathe
      await onBatch?.(start + size);
    }
    return tf.concat(parts, 0);
  } finally {
    parts.forEach((p) => p.dispose());
  }
}

/** Bytes a float32 feature tensor for `n` samples at the boundary would take. */
export function featureBytes(split: FeatureSplit, n: number): number {
  const perSample = (split.prefix.outputs[0].shape.slice(1) as number[]).reduce((a, b) => a * b, 1);
  return perSample * n * 4;
}
