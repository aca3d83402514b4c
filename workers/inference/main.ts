import { GraftError } from '../../src/errors';
import { serializeGraftError } from '../../src/untrusted/protocol';
import { classify, rowsOf } from '../../src/inference/classify';
import type { FromChild, InferenceSettings, InferenceStats, PredictOutput, PredictTask, RowsResult, RowsTask, ToChild } from '../../src/inference/protocol';
import { initBackend } from '../engine/backend';
import { checkRows, prepareInstances } from './instances';
import { MicroBatcher } from './micro-batcher';
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
    if (loaded.labels && task.layer === undefined) return { checkpoint: task.checkpoint, predictions: classify(out.data, out.rowSize, count, loaded.labels, task.top) };
    return { checkpoint: task.checkpoint, outputs: rowsOf(out.data, out.rowSize, count), shape: out.shape };
  } finally {
    cache.release(loaded);
  }
}

/**
 * Several requests' packed rows (coalesced by the API): each part is checked against the model's
 * input on its own (a bad part fails alone, naming its instance), the good ones run as one
 * batch, and the raw outputs go back for the API to shape into responses.
 */
async function predictRows(task: RowsTask): Promise<RowsResult> {
  await backend;
  const loaded = await cache.acquire(task.dir, task.checkpoint);
  try {
    const predictor = layerModel(loaded, task.layer);
    const parts = task.parts.map((part) => checkRows(task.x.subarray(part.offset, part.offset + part.length), part, loaded.inputShape));
    const accepted = task.parts.filter((_, i) => parts[i].ok);
    const count = parts.reduce((n, p) => n + (p.ok ? p.count : 0), 0);
    const x = accepted.length === task.parts.length ? task.x : gather(task.x, accepted);
    const labels = task.layer === undefined ? loaded.labels : null;
    if (count === 0) return { output: new Float32Array(0), rowSize: 0, shape: [], labels, parts };
    const out = await batcher.predict(`${loaded.key}\0${task.layer ?? ''}`, predictor, loaded.inputShape, x, count, task.othersInFlight);
    return { output: out.data, rowSize: out.rowSize, shape: out.shape, labels, parts };
  } finally {
    cache.release(loaded);
  }
}

function gather(x: Float32Array, parts: { offset: number; length: number }[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(x.subarray(p.offset, p.offset + p.length), at);
    at += p.length;
  }
  return out;
}

function stats(): InferenceStats {
  return { pid: process.pid, backend: backendName, ...batcher.stats, batchSizes: { ...batcher.stats.batchSizes }, models: cache.size, loads: cache.loads, evictions: cache.evictions };
}

/** Runs one prediction message, counted in `predicting` while it is held here. */
async function counted<T>(run: () => Promise<T>): Promise<T> {
  predicting++;
  try {
    return await run();
  } finally {
    predicting--;
  }
}

async function handle(msg: ToChild): Promise<unknown> {
  switch (msg.op) {
    case 'predict':
      return counted(() => predict(msg.task));
    case 'rows':
      return counted(() => predictRows(msg.task));
    case 'evict':
      return cache.evictDir(msg.dir);
    case 'stats':
      return stats();
  }
}

/** Answers of this turn of the event loop (a batch's requests settle together), sent as one message. */
let outbox: FromChild[] = [];
let flushing: NodeJS.Immediate | null = null;

function reply(message: FromChild): void {
  outbox.push(message);
  flushing ??= setImmediate(() => {
    const batch = outbox;
    outbox = [];
    flushing = null;
    // The API may close the channel while a prediction runs; the answers then have nowhere to go.
    if (process.connected) process.send!(batch, undefined, undefined, () => undefined);
  });
}

process.on('message', (msgs: ToChild[]) => {
  for (const msg of msgs) answer(msg);
});

function answer(msg: ToChild): void {
  handle(msg).then(
    (value) => reply({ id: msg.id, ok: true, value }),
    (err: unknown) => {
      if (err instanceof GraftError) {
        reply({ id: msg.id, ok: false, error: serializeGraftError(err) });
      } else {
        process.stderr.write(`[inference ${process.pid}] ${(err as Error).stack ?? String(err)}\n`);
        reply({ id: msg.id, ok: false, error: { code: 'inference_failed', message: `Prediction failed in the inference process: ${(err as Error).message}`, param: null, statusCode: 500 } });
      }
    },
  );
}
// The API went away (or closed us): nothing is left to answer.
process.on('disconnect', () => process.exit(0));
process.on('error', () => undefined); // EPIPE on a channel closing under a reply: the disconnect handler exits
