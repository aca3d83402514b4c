import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { registerTrainingKernels, unregisterTrainingKernels } from '../workers/engine/kernels';

/**
 * Throughput of the seed network on the wasm and cpu backends, with the stock kernels and with
 * graft's training kernels (workers/engine/kernels). Run: `npx tsc -p tsconfig.build.json &&
 * node dist/bench/kernels.js [--quick]` (--quick skips the stock cpu training run, ~1 minute).
 *
 * Every number is wall clock over whole batches after a warm-up, each batch read back (dataSync)
 * so nothing is left queued. The same input batch is reused: this measures compute, not a pipeline.
 */

export const SEED_INPUT_SHAPE: [number, number, number] = [28, 28, 1];
export const SEED_CLASSES = 10;
export const ENCODER_OUTPUT = 'enc_flatten';
const TRAIN_BATCH = 64;
const FORWARD_BATCH = 256;
const LEARNING_RATE = 1e-3;
/** Share of pixels left at 0, roughly MNIST's: keeps ReLU/max-pool branches realistic. */
const BACKGROUND = 0.8;

export interface MeasureOptions {
  batchSize?: number;
  /** Untimed batches first (XNNPACK operator setup, JIT). */
  warmupBatches?: number;
  /** Timed batches continue until both minimums are met. */
  minBatches?: number;
  minSeconds?: number;
}

export interface Throughput {
  samplesPerSecond: number;
  msPerBatch: number;
  batchSize: number;
  batches: number;
}

const DEFAULTS: Required<MeasureOptions> = { batchSize: TRAIN_BATCH, warmupBatches: 3, minBatches: 5, minSeconds: 3 };

/** The seed network of the conv-autoencoder family: its encoder ends at enc_flatten. */
export function buildSeedNetwork(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ name: 'enc_conv1', inputShape: SEED_INPUT_SHAPE, filters: 16, kernelSize: 5, padding: 'valid', activation: 'relu' }),
      tf.layers.maxPooling2d({ name: 'enc_pool1', poolSize: 2 }),
      tf.layers.conv2d({ name: 'enc_conv2', filters: 32, kernelSize: 5, padding: 'valid', activation: 'relu' }),
      tf.layers.maxPooling2d({ name: 'enc_pool2', poolSize: 2 }),
      tf.layers.flatten({ name: ENCODER_OUTPUT }),
      tf.layers.dense({ name: 'fc', units: SEED_CLASSES, activation: 'softmax' }),
    ],
  });
}

/** The prefix of `model` up to and including `layerName` (shares its weights). */
export function encoderOf(model: tf.LayersModel, layerName = ENCODER_OUTPUT): tf.LayersModel {
  return tf.model({ inputs: model.inputs, outputs: model.getLayer(layerName).output as tf.SymbolicTensor });
}

/** Activates a backend by name; for wasm, loads the .wasm files shipped in the package. */
export async function useBackend(name: 'wasm' | 'cpu'): Promise<void> {
  if (name === 'wasm' && !tf.findBackend('wasm')) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep);
  }
  if (!(await tf.setBackend(name))) throw new Error(`backend ${name} failed to initialise`);
  await tf.ready();
}

function inputBatch(model: tf.LayersModel, batchSize: number): tf.Tensor {
  const shape = model.inputs[0].shape.slice(1) as number[];
  return tf.tidy(() => {
    const u = tf.randomUniform([batchSize, ...shape]);
    return tf.where(tf.less(u, BACKGROUND), tf.zerosLike(u), tf.div(tf.sub(u, BACKGROUND), 1 - BACKGROUND));
  });
}

async function timeBatches(step: () => void, batchSize: number, o: Required<MeasureOptions>): Promise<Throughput> {
  for (let i = 0; i < o.warmupBatches; i++) step();
  let batches = 0;
  const started = performance.now();
  while (batches < o.minBatches || performance.now() - started < o.minSeconds * 1000) {
    step();
    batches++;
  }
  const ms = performance.now() - started;
  return { samplesPerSecond: (batches * batchSize * 1000) / ms, msPerBatch: ms / batches, batchSize, batches };
}

/**
 * Full training steps (forward, backward, Adam update) of a softmax classifier `model` with
 * categorical cross-entropy on one random batch. Trains the model's weights in place.
 */
export async function measureTraining(model: tf.LayersModel, options: MeasureOptions & { learningRate?: number } = {}): Promise<Throughput> {
  const o = { ...DEFAULTS, ...options };
  const classes = model.outputs[0].shape[1] as number;
  const x = inputBatch(model, o.batchSize);
  const y = tf.tidy(() => tf.oneHot(tf.randomUniform([o.batchSize], 0, classes, 'int32'), classes));
  const optimizer = tf.train.adam(options.learningRate ?? LEARNING_RATE);
  const loss = () => tf.mean(tf.metrics.categoricalCrossentropy(y, model.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar;
  try {
    return await timeBatches(() => {
      const value = optimizer.minimize(loss, true)!;
      value.dataSync();
      value.dispose();
    }, o.batchSize, o);
  } finally {
    tf.dispose([x, y]);
    optimizer.dispose();
  }
}

/** Inference-mode forward passes of `model`, e.g. encoderOf(seed) for feature extraction. */
export async function measureForward(model: tf.LayersModel, options: MeasureOptions = {}): Promise<Throughput> {
  const o = { ...DEFAULTS, batchSize: FORWARD_BATCH, ...options };
  const x = inputBatch(model, o.batchSize);
  try {
    return await timeBatches(() => {
      const out = model.predict(x) as tf.Tensor;
      out.dataSync();
      out.dispose();
    }, o.batchSize, o);
  } finally {
    x.dispose();
  }
}

interface Row {
  backend: string;
  kernels: 'stock' | 'graft';
  training: Throughput | string;
  forward: Throughput;
}

function cell(t: Throughput | string): string {
  return typeof t === 'string' ? t : `${t.samplesPerSecond.toFixed(0)} /s (${t.msPerBatch.toFixed(1)} ms x ${t.batches})`;
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const rows: Row[] = [];
  for (const backend of ['wasm', 'cpu'] as const) {
    await useBackend(backend);
    for (const kernels of ['stock', 'graft'] as const) {
      if (kernels === 'graft') registerTrainingKernels(backend);
      else unregisterTrainingKernels(backend);
      const model = buildSeedNetwork();
      let training: Throughput | string;
      if (backend === 'cpu' && kernels === 'stock' && quick) training = 'skipped (--quick)';
      else {
        // Stock cpu needs ~25 s per batch: time one.
        const slow = backend === 'cpu' && kernels === 'stock';
        training = await measureTraining(model, slow ? { warmupBatches: 1, minBatches: 1, minSeconds: 0 } : backend === 'cpu' ? { warmupBatches: 1, minBatches: 3 } : {})
          .catch((err: Error) => `fails: ${err.message.split('\n')[0]}`);
      }
      const forward = await measureForward(encoderOf(model), backend === 'cpu' ? { warmupBatches: 1, minBatches: 3 } : {});
      rows.push({ backend, kernels, training, forward });
      model.dispose();
      console.error(`${backend}/${kernels}: training ${cell(training)}, forward ${cell(forward)}`);
    }
  }
  console.log(`\nSeed network, training batch ${TRAIN_BATCH} (Adam ${LEARNING_RATE}), forward to ${ENCODER_OUTPUT} batch ${FORWARD_BATCH}:\n`);
  console.log('| backend | kernels | full training (samples/s) | forward features (samples/s) |');
  console.log('|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.backend} | ${r.kernels} | ${cell(r.training)} | ${cell(r.forward)} |`);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
