import * as tf from '@tensorflow/tfjs';
import { Random } from './data/random';

/**
 * Layer construction with seeded initialisers: the same seed and spec build bit-identical
 * networks, which is what makes runs comparable (and the cached/uncached paths testable).
 * Any class TensorFlow.js registers for (de)serialisation can be built from a plan, so a new
 * head type (src/spec/heads/) or architecture layer needs no change here.
 */
export interface BuildableLayer {
  name: string;
  /** A TensorFlow.js layer class name as registered for serialisation, e.g. "Dense". */
  className: string;
  config: Record<string, unknown>;
}

type Constructor = [tf.serialization.SerializableConstructor<tf.serialization.Serializable>, (cls: unknown, config: tf.serialization.ConfigDict) => unknown];

function registered(className: string): Constructor | undefined {
  const map = tf.serialization.SerializationMap.getMap().classNameMap as Record<string, Constructor | undefined>;
  return Object.prototype.hasOwnProperty.call(map, className) ? map[className] : undefined;
}

function construct<T>(className: string, config: Record<string, unknown>): T {
  const entry = registered(className);
  if (!entry) throw new Error(`unsupported layer class ${className}`);
  const [cls, fromConfig] = entry;
  return fromConfig(cls, config as tf.serialization.ConfigDict) as T;
}

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

/**
 * Seeded replacements for the random initialisers the layer would use by default. Kernels are
 * Glorot-uniform, as in Keras (tfjs defaults to Glorot-normal); any other random initialiser
 * keeps its class and gains a seed. Initialisers the plan sets itself are left alone.
 */
function seededInitializers(className: string, config: Record<string, unknown>, seed: number, name: string): Record<string, unknown> {
  const defaults = construct<tf.layers.Layer>(className, { ...config, name }).getConfig();
  const seeded: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(defaults)) {
    if (!key.endsWith('Initializer') || key in config || !value || typeof value !== 'object') continue;
    const init = value as { className?: string; config?: Record<string, unknown> };
    if (!init.className || !SEEDED_INITIALIZERS.has(init.className)) continue;
    const weightSeed = deriveSeed(seed, name, key.slice(0, -'Initializer'.length));
    seeded[key] = key === 'kernelInitializer'
      ? tf.initializers.glorotUniform({ seed: weightSeed })
      : construct(init.className, { ...init.config, seed: weightSeed });
  }
  return seeded;
}

export function buildLayer(plan: BuildableLayer, seed: number, extra: Record<string, unknown> = {}): tf.layers.Layer {
  const config: Record<string, unknown> = { ...plan.config, ...extra, name: plan.name };
  Object.assign(config, seededInitializers(plan.className, config, seed, plan.name));
  const layer = construct<tf.layers.Layer>(plan.className, config);
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
