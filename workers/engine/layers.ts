import * as tf from '@tensorflow/tfjs';
import type { LayerPlan } from '../../src/spec/architectures';
import { Random } from './data/random';
import type { HeadLayerSpec } from '../../src/spec/schema';

/**
 * Layer construction with seeded initialisers: the same seed and spec build bit-identical
 * networks, which is what makes runs comparable (and the cached/uncached paths testable).
 */
type Factory = (config: Record<string, unknown>) => tf.layers.Layer;

const FACTORIES: Record<string, Factory> = {
  Conv2D: (c) => tf.layers.conv2d(c as never),
  Conv2DTranspose: (c) => tf.layers.conv2dTranspose(c as never),
  MaxPooling2D: (c) => tf.layers.maxPooling2d(c as never),
  Flatten: (c) => tf.layers.flatten(c as never),
  Dense: (c) => tf.layers.dense(c as never),
  Reshape: (c) => tf.layers.reshape(c as never),
  UpSampling2D: (c) => tf.layers.upSampling2d(c as never),
  Dropout: (c) => tf.layers.dropout(c as never),
  GlobalAveragePooling2D: (c) => tf.layers.globalAveragePooling2d(c as never),
  BatchNormalization: (c) => tf.layers.batchNormalization(c as never),
};

/** Initialisers that draw random numbers and so take a seed. */
const SEEDED_INITIALIZERS = new Set([
  'GlorotUniform', 'GlorotNormal', 'HeUniform', 'HeNormal', 'LeCunUniform', 'LeCunNormal',
  'RandomUniform', 'RandomNormal', 'TruncatedNormal', 'VarianceScaling', 'Orthogonal',
]);

/** A stable 31-bit seed per (job seed, layer, weight): FNV-1a over the names. */
export function deriveSeed(seed: number, ...parts: string[]): number {
  let h = 0x811c9dc5 ^ seed;
  for (const ch of parts.join('/')) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % 2147483647;
}

export function buildLayer(plan: LayerPlan | { name: string; className: string; config: Record<string, unknown> }, seed: number, extra: Record<string, unknown> = {}): tf.layers.Layer {
  const factory = FACTORIES[plan.className];
  if (!factory) throw new Error(`unsupported layer class ${plan.className}`);
  const config: Record<string, unknown> = { ...plan.config, ...extra, name: plan.name };
  if (['Conv2D', 'Conv2DTranspose', 'Dense'].includes(plan.className)) {
    config.kernelInitializer = tf.initializers.glorotUniform({ seed: deriveSeed(seed, plan.name, 'kernel') });
  }
  const layer = factory(config);
  if (plan.className === 'Dropout') seedDropout(layer, deriveSeed(seed, plan.name, 'dropout'), config.rate as number);
  return layer;
}

/**
 * tfjs's Dropout either draws from Math.random (unseeded: runs are not repeatable) or, given a
 * seed, draws the *same* mask on every call. Each call here gets the next seed of a seeded
 * generator instead: a fresh mask per batch, the same sequence for the same job seed.
 */
function seedDropout(layer: tf.layers.Layer, seed: number, rate: number): void {
  const rng = new Random(seed);
  layer.call = (inputs, kwargs) =>
    tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return kwargs.training && rate > 0 ? tf.dropout(x, rate, undefined, rng.nextUint32()) : x.clone();
    });
}

export function headLayerPlan(layer: HeadLayerSpec, name: string): { name: string; className: string; config: Record<string, unknown> } {
  switch (layer.type) {
    case 'dense':
      return { name, className: 'Dense', config: { units: layer.units, activation: layer.activation ?? 'linear', useBias: layer.useBias ?? true } };
    case 'dropout':
      return { name, className: 'Dropout', config: { rate: layer.rate } };
    case 'flatten':
      return { name, className: 'Flatten', config: {} };
    case 'globalAveragePooling2d':
      return { name, className: 'GlobalAveragePooling2D', config: {} };
    case 'batchNormalization':
      return { name, className: 'BatchNormalization', config: layer.momentum === undefined ? {} : { momentum: layer.momentum } };
  }
}

/**
 * Rewrites a Keras/tfjs model JSON so every random initialiser carries a seed derived from the job
 * seed and the layer name. Works on both snake_case (Keras) and camelCase keys.
 */
export function seedTopology(topology: unknown, seed: number): unknown {
  const copy = JSON.parse(JSON.stringify(topology)) as unknown;
  const visit = (node: unknown, layerName: string) => {
    if (Array.isArray(node)) {
      node.forEach((n) => visit(n, layerName));
      return;
    }
    if (!node || typeof node !== 'object') return;
    const obj = node as Record<string, unknown>;
    const cfg = obj.config as Record<string, unknown> | undefined;
    const name = typeof cfg?.name === 'string' && obj.class_name ? cfg.name : layerName;
    for (const [key, value] of Object.entries(obj)) {
      if (/initializer$/i.test(key) && value && typeof value === 'object') {
        const init = value as { class_name?: string; className?: string; config?: Record<string, unknown> };
        const cls = init.class_name ?? init.className;
        if (cls && SEEDED_INITIALIZERS.has(cls)) init.config = { ...init.config, seed: deriveSeed(seed, name, key) };
      } else {
        visit(value, name);
      }
    }
  };
  visit(copy, '');
  return copy;
}

/** A layer that behaves differently (randomly) in training mode even without weights. */
export function isStochastic(layer: tf.layers.Layer): boolean {
  const cls = layer.getClassName();
  if (/Dropout|GaussianNoise/.test(cls)) {
    const rate = (layer.getConfig() as { rate?: number; stddev?: number }).rate ?? (layer.getConfig() as { stddev?: number }).stddev ?? 1;
    return rate > 0;
  }
  return false;
}
