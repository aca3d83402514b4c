import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { count, memoryTensor, rows, sequence, type HostTensor } from './host-data';
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

/** Where extracted features go: host memory, or a file on the volume (spilled: too large for memory). */
export type FeatureDestination = { kind: 'memory' } | { kind: 'file'; file: string };

/** Runs the prefix over `x` in inference mode, batch by batch, into memory or a file. */
export async function extractFeatures(
  prefix: tf.LayersModel,
  x: HostTensor,
  batchSize: number,
  onBatch?: (done: number) => Promise<void> | void,
  destination: FeatureDestination = { kind: 'memory' },
): Promise<HostTensor> {
  const n = count(x);
  const shape = [n, ...(prefix.outputs[0].shape.slice(1) as number[])];
  const size = shape.slice(1).reduce((a, b) => a * b, 1);
  const data = destination.kind === 'memory' ? new Float32Array(n * size) : null;
  const fh = destination.kind === 'file' ? await fs.open(destination.file, 'w+') : null;
  try {
    for (let start = 0; start < n; start += batchSize) {
      const m = Math.min(batchSize, n - start);
      const xb = await rows(x, sequence(start, m));
      const out = tf.tidy(() => prefix.predict(xb) as tf.Tensor);
      xb.dispose();
      const values = (await out.data()) as Float32Array;
      out.dispose();
      if (data) data.set(values, start * size);
      else await fh!.write(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 0, values.byteLength, start * size * 4);
      await onBatch?.(start + m);
    }
  } catch (err) {
    await fh?.close();
    if (destination.kind === 'file') await fs.rm(destination.file, { force: true });
    throw err;
  }
  return data ? memoryTensor(data, shape) : fileTensor(fh!, destination.kind === 'file' ? destination.file : '', shape);
}

/** Rows of float32 features in a file, read with positional reads; closing deletes the file (it belongs to this run). */
function fileTensor(fh: FileHandle, file: string, shape: number[]): HostTensor {
  const size = shape.slice(1).reduce((a, b) => a * b, 1);
  const rowBytes = size * 4;
  let closed = false;
  return {
    shape,
    async read(idx) {
      const out = new Float32Array(idx.length * size);
      const bytes = new Uint8Array(out.buffer);
      await Promise.all(Array.from(idx, (i, k) => fh.read(bytes, k * rowBytes, rowBytes, i * rowBytes)));
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      await fh.close();
      await fs.rm(file, { force: true });
    },
  };
}

/** Bytes the float32 features of `n` samples at the boundary would take. */
export function featureBytes(split: FeatureSplit, n: number): number {
  const perSample = (split.prefix.outputs[0].shape.slice(1) as number[]).reduce((a, b) => a * b, 1);
  return perSample * n * 4;
}
