import * as tf from '@tensorflow/tfjs';
import { UnprocessableError } from '../../src/errors';
import type { JobProgress, JobResult } from '../../src/jobs/types';
import type { JobSpec } from '../../src/spec/schema';
import { DatasetCatalog } from '../../src/storage/datasets';
import type { DataLayout } from '../../src/storage/layout';
import type { BackendName } from './backend';
import { readCheckpoint, saveCheckpoint, type CheckpointManifest } from './checkpoint-io';
import { loadDataset } from './data';
import { stratifiedSplit } from './data/random';
import { evaluate, type Metrics } from './evaluate';
import { lossFor } from './losses';
import { buildTarget, dispose, type Shape3, type TargetModel } from './model';
import { train, type EpochMetrics, type Split } from './trainer';

/**
 * One job, start to finish: dataset → target network → training → evaluation → checkpoint.
 * The only entry point the worker calls; it owns every tensor it creates and frees them all,
 * whether the job succeeds or fails (the worker's child process is reused across jobs).
 */
export interface RunContext {
  jobId: string;
  layout: DataLayout;
  backend: BackendName;
  featureCacheMaxBytes: number;
  signal?: AbortSignal;
  onProgress?(progress: JobProgress): Promise<void> | void;
  onEpoch?(metrics: EpochMetrics): Promise<void> | void;
  log?(message: string, data?: Record<string, unknown>): void;
}

export interface JobOutcome {
  result: JobResult;
  manifest: CheckpointManifest;
}

const EVAL_BATCH = 512;

interface Prepared {
  train: Split;
  val: Split | null;
  test: Split | null;
  classes: string[];
}

export async function runJob(spec: JobSpec, ctx: RunContext): Promise<JobOutcome> {
  const log = ctx.log ?? (() => undefined);
  const training = { epochs: 10, batchSize: 32, optimizer: 'adam' as const, learningRate: 0.001, seed: 0, ...spec.training };
  const progress = (p: Partial<JobProgress> & { phase: string }) =>
    ctx.onProgress?.({ epoch: 0, epochs: training.epochs, batch: 0, batches: 0, loss: null, accuracy: null, valLoss: null, valAccuracy: null, ...p });

  await progress({ phase: 'loading' });
  const description = await new DatasetCatalog(ctx.layout).describe(spec.dataset.name);
  const numClasses = description.classes.length;

  let target: TargetModel | null = null;
  let data: Prepared | null = null;
  try {
    await progress({ phase: 'building' });
    target = await buildTarget(spec, {
      datasetShape: description.inputShape as Shape3 | null,
      numClasses,
      loadSource: (name) => readCheckpoint(ctx.layout.checkpointDir(name, '/source/checkpoint')),
    });
    if (target.restore) {
      log('restored weights', { restored: target.restore.restored.length, skipped: target.restore.skipped });
    }

    data = await prepareData(spec, ctx, target, description.splits.test !== undefined && description.splits.test !== null, numClasses);

    const trained = await train(target, data.train, data.val, {
      epochs: training.epochs,
      batchSize: training.batchSize,
      optimizer: training.optimizer,
      learningRate: training.learningRate,
      seed: training.seed,
      earlyStopping: training.earlyStopping,
      maxRuntimeSeconds: training.maxRuntimeSeconds,
      select: spec.output.select ?? 'last',
      featureCacheMaxBytes: ctx.featureCacheMaxBytes,
      signal: ctx.signal,
      onBatch: (p) => progress({ ...p }),
      onEpoch: async (m, p) => {
        await progress({ ...p, valLoss: m.valLoss, valAccuracy: m.valAccuracy });
        await ctx.onEpoch?.(m);
      },
    });

    await progress({ phase: 'evaluating', epoch: trained.epochsRun, batches: 0 });
    const { fn: lossFn } = lossFor(target.model, target.task);
    const evalOpts = { lossFn, batchSize: EVAL_BATCH, withConfusion: true, classNames: data.classes };
    const validation = data.val ? await evaluate(target.model, data.val.x, data.val.y, target.task, evalOpts) : null;
    const test = data.test ? await evaluate(target.model, data.test.x, data.test.y, target.task, evalOpts) : null;
    const metrics = { validation: publicMetrics(validation), test: publicMetrics(test) };

    await progress({ phase: 'saving', epoch: trained.epochsRun });
    const manifest = await saveCheckpoint(ctx.layout, spec.output.checkpoint, target.model, {
      jobId: ctx.jobId,
      jobType: spec.type,
      task: target.task,
      inputShape: target.inputShape,
      labels: target.task === 'classification' ? data.classes : undefined,
      spec: spec as unknown as Record<string, unknown>,
      source: spec.source
        ? { checkpoint: spec.source.checkpoint, restored: target.restore?.restored ?? [], skipped: target.restore?.skipped ?? [], mismatched: [] }
        : null,
      frozen: target.frozen,
      lrMultipliers: target.lrMultipliers,
      backend: ctx.backend,
      metrics: { ...metrics, training: { epochsRun: trained.epochsRun, stoppedEarly: trained.stoppedEarly, bestEpoch: trained.bestEpoch, seconds: trained.seconds, samplesPerSecond: trained.samplesPerSecond, featureCache: trained.featureCache } },
      history: trained.history.map((h) => ({ ...h })),
    });

    return {
      manifest,
      result: {
        checkpoint: spec.output.checkpoint,
        backend: ctx.backend,
        metrics,
        epochsRun: trained.epochsRun,
        restored: target.restore?.restored,
        skipped: target.restore?.skipped,
        frozen: target.frozen,
        featureCache: trained.featureCache,
        trainingSeconds: round(trained.seconds),
      },
    };
  } finally {
    if (data) tf.dispose([data.train.x, data.train.y, data.val?.x, data.val?.y, data.test?.x, data.test?.y].filter((t): t is tf.Tensor => t !== undefined));
    if (target) dispose(target.model);
  }
}

async function prepareData(spec: JobSpec, ctx: RunContext, target: TargetModel, hasTest: boolean, numClasses: number): Promise<Prepared> {
  const seed = spec.training?.seed ?? 0;
  const loaded = await loadDataset(ctx.layout, spec.dataset.name, { inputShape: target.inputShape, split: 'train' });
  const fraction = spec.dataset.validationSplit ?? 0.1;
  let trainIdx: Int32Array;
  let valIdx: Int32Array;
  if (fraction > 0) {
    ({ trainIdx, valIdx } = stratifiedSplit(loaded.labels, fraction, seed, numClasses));
  } else {
    trainIdx = Int32Array.from({ length: loaded.labels.length }, (_, i) => i);
    valIdx = new Int32Array(0);
  }
  const limit = spec.dataset.limit;
  if (limit !== undefined && limit < trainIdx.length) {
    const trainLabels = Int32Array.from(trainIdx, (i) => loaded.labels[i]);
    const { valIdx: picked } = stratifiedSplit(trainLabels, limit / trainIdx.length, seed + 1, numClasses);
    trainIdx = Int32Array.from(picked.subarray(0, limit), (j) => trainIdx[j]);
  }
  if (trainIdx.length === 0) throw new UnprocessableError('dataset_too_small', 'No training samples remain after the validation split; lower dataset.validationSplit or add data.', '/dataset/validationSplit');

  const shape = loaded.shape.slice(1);
  const perSample = shape.reduce((a, b) => a * b, 1);
  const toSplit = (images: Float32Array, labels: Int32Array, idx: Int32Array | null): Split => {
    const count = idx ? idx.length : labels.length;
    const x = new Float32Array(count * perSample);
    const y = new Int32Array(count);
    for (let k = 0; k < count; k++) {
      const i = idx ? idx[k] : k;
      x.set(images.subarray(i * perSample, (i + 1) * perSample), k * perSample);
      y[k] = labels[i];
    }
    const xt = tf.tensor(x, [count, ...shape]);
    const yt = target.task === 'classification' ? tf.tidy(() => tf.oneHot(tf.tensor1d(y, 'int32'), numClasses).toFloat()) : xt.clone();
    return { x: xt, y: yt };
  };

  const trainSplit = toSplit(loaded.images, loaded.labels, trainIdx);
  const val = valIdx.length > 0 ? toSplit(loaded.images, loaded.labels, valIdx) : null;
  let test: Split | null = null;
  if (hasTest) {
    const t = await loadDataset(ctx.layout, spec.dataset.name, { inputShape: target.inputShape, split: 'test' });
    test = toSplit(t.images, t.labels, null);
  }
  return { train: trainSplit, val, test, classes: loaded.classes };
}

function round(v: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function publicMetrics(m: Metrics | null) {
  if (!m) return null;
  return { ...m, loss: round(m.loss, 6), accuracy: m.accuracy === null ? null : round(m.accuracy, 6) };
}
