import { GraftError } from '../../src/errors';
import type { Classification, FromChild, InferenceSettings, InferenceStats, PredictOutput, PredictTask, ToChild } from '../../src/inference/protocol';
import { initBackend } from '../engine/backend';
import { prepareInstances } from './instances';
import { MicroBatcher, type BatchOutput } from './micro-batcher';
import { layerModel, ModelCache } from './model-cache';

/**
 * An inference process, forked by the API (src/inference/inference-client.ts) with its settings
 * as the one argument. It answers predict / evict / stats messages on its IPC channel; the API
 * never loads TensorFlow.js itself. Exits when the API disconnects.
 */
const settings = JSON.parse(process.argv[2] ?? '{}') as InferenceSettings;
let backendName: string | null = null;
const backend = initBackend(settings.backend, (msg) => process.stderr.write(`[inference ${process.pid}] ${msg}\n`)).then((name) => {
  backendName = name;
  return name;
});
const cache = new ModelCache(settings.modelCache);
/** Predict requests received and not yet answered. */
let predicting = 0;
const batcher = new MicroBatcher({ windowMs: settings.batchWindowMs, maxBatch: settings.maxBatch, othersInFlight: () => predicting - 1 });

async function predict(task: PredictTask): Promise<PredictOutput> {
  await backend;
  const loaded = await cache.acquire(task.dir, task.checkpoint);
  try {
    const predictor = layerModel(loaded, task.layer);
    const { x, count } = await prepareInstances(task.input, loaded.inputShape, loaded.preprocess, settings.imageLimits);
    const out = await batcher.predict(`${loaded.key}\0${task.layer ?? ''}`, predictor, loaded.inputShape, x, count);
    if (loaded.labels && task.layer === undefined) return { checkpoint: task.checkpoint, predictions: classify(out, count, loaded.labels, task.top) };
    return { checkpoint: task.checkpoint, outputs: Array.from({ length: count }, (_, i) => Array.from(out.data.subarray(i * out.rowSize, (i + 1) * out.rowSize))), shape: out.shape };
  } finally {
    cache.release(loaded);
  }
}

/** Each row's most probable class and its `top` best classes, most probable first. */
function classify(out: BatchOutput, count: number, labels: string[], top: number): Classification[] {
  const k = Math.min(top, out.rowSize);
  return Array.from({ length: count }, (_, i) => {
    const row = out.data.subarray(i * out.rowSize, (i + 1) * out.rowSize);
    const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a]).slice(0, Math.max(k, 1));
    const best = { label: labels[order[0]] ?? String(order[0]), probability: row[order[0]] };
    return { ...best, top: order.slice(0, k).map((c) => ({ label: labels[c] ?? String(c), probability: row[c] })) };
  });
}

function stats(): InferenceStats {
  return { pid: process.pid, backend: backendName, ...batcher.stats, batchSizes: { ...batcher.stats.batchSizes }, models: cache.size, loads: cache.loads, evictions: cache.evictions };
}

async function handle(msg: ToChild): Promise<unknown> {
  switch (msg.op) {
    case 'predict':
      predicting++;
      try {
        return await predict(msg.task);
      } finally {
        predicting--;
      }
    case 'evict':
      return cache.evictDir(msg.dir);
    case 'stats':
      return stats();
  }
}

function reply(message: FromChild): void {
  // The API may close the channel while a prediction runs; the answer then has nowhere to go.
  if (process.connected) process.send!(message, undefined, undefined, () => undefined);
}

process.on('message', (msg: ToChild) => {
  handle(msg).then(
    (value) => reply({ id: msg.id, ok: true, value }),
    (err: unknown) => {
      if (err instanceof GraftError) {
        reply({ id: msg.id, ok: false, error: { code: err.code, message: err.message, param: err.param, statusCode: err.statusCode, details: err.details } });
      } else {
        process.stderr.write(`[inference ${process.pid}] ${(err as Error).stack ?? String(err)}\n`);
        reply({ id: msg.id, ok: false, error: { code: 'inference_failed', message: `Prediction failed in the inference process: ${(err as Error).message}`, param: null, statusCode: 500 } });
      }
    },
  );
});
// The API went away (or closed us): nothing is left to answer.
process.on('disconnect', () => process.exit(0));
process.on('error', () => undefined); // EPIPE on a channel closing under a reply: the disconnect handler exits
