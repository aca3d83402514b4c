import { UnprocessableError } from '../../src/errors';
import type { JobProgress, JobResult } from '../../src/jobs/types';
import { DEFAULT_OUTPUT_SELECT, DEFAULT_VALIDATION_SPLIT, resolveTraining, type JobSpec } from '../../src/spec/schema';
import path from 'node:path';
import { DatasetCatalog, openSamples, type DatasetLimits, type SampleStore } from '../../src/storage/datasets';
import { describePreprocess, resolvePreprocess, scaledRange, type Preprocess } from '../../src/spec/preprocess';
import { trainingCheckpointsDir } from '../../src/storage/training-checkpoints';
import type { DataLayout } from '../../src/storage/layout';
import type { BackendName } from '../../src/spec/backends';
import { readCheckpoint, saveCheckpoint, type CheckpointManifest } from './checkpoint-io';
import { stratifiedSplit } from './data/random';
import { scaledRows } from './data/preprocess';
import { EpochCheckpoints, type ResumeState } from './epoch-checkpoints';
import { evaluate, type Metrics } from './evaluate';
import { lossFor } from './losses';
import { buildTarget, dispose, type Shape3, type TargetModel } from './model';
import { inferenceBatch, type Split } from './host-data';
import { train, type EpochMetrics, type TrainOptions, type TrainResult } from './trainer';

/**
 * One job, start to finish: dataset → target network → training → evaluation → checkpoint.
 * The only entry point the worker calls; it owns every tensor it creates and frees them all,
 * whether the job succeeds or fails (the worker's child process is reused across jobs).
 */
export interface RunContext {
  jobId: string;
  /** The volume as the job's tenant sees it: the names of its spec are relative to it. */
  layout: DataLayout;
  backend: BackendName;
  featureCacheMaxBytes: number;
  /** Feature caches above featureCacheMaxBytes spill to DATA_DIR/jobs/<id>/ up to this (FEATURE_CACHE_DISK_MAX_MB); 0/absent = never. */
  featureCacheDiskMaxBytes?: number;
  /** Shard size of the on-volume sample cache (SAMPLE_CACHE_SHARD_MB). */
  sampleCacheShardBytes?: number;
  /** Batches read ahead (PREFETCH_BATCHES). */
  prefetchBatches?: number;
  /** Byte and pixel limits on reading the dataset (DATASET_MAX_BYTES, IMAGE_MAX_*); defaults when absent. */
  datasetLimits?: DatasetLimits;
  /** Evaluation keeps a confusion matrix up to this many classes (CONFUSION_MATRIX_MAX_CLASSES). */
  maxConfusionClasses?: number;
  signal?: AbortSignal;
  /** Aborted when the worker shuts down: checkpoint at the next batch boundary and stop. */
  interrupt?: AbortSignal;
  /** Training checkpoints kept per job (per epoch and on shutdown); 0 turns them off. */
  checkpointKeep?: number;
  onProgress?(progress: JobProgress): Promise<void> | void;
  onEpoch?(metrics: EpochMetrics): Promise<void> | void;
  /** A notable step (info level). */
  onEvent?(message: string, data?: Record<string, unknown>): Promise<void> | void;
  /** Something the user should know that does not stop the job (e.g. skipped weights). */
  onWarning?(message: string, data?: Record<string, unknown>): Promise<void> | void;
  log?(message: string, data?: Record<string, unknown>): void;
  /**
   * Called before anything is written to the volume (a training checkpoint, the output): throws
   * if this attempt may not write (it lost the job to another worker, or it was cancelled).
   */
  beforeSave?(what: 'training-checkpoint' | 'output'): Promise<void>;
}

export interface JobOutcome {
  result: JobResult;
  manifest: CheckpointManifest;
}

interface Prepared {
  train: Split;
  val: Split | null;
  test: Split | null;
  classes: string[];
  /** Open sample stores behind the splits. */
  stores: SampleStore[];
}

/** Default of SAMPLE_CACHE_SHARD_MB. */
export const DEFAULT_SHARD_BYTES = 64 * 1024 * 1024;

export async function runJob(spec: JobSpec, ctx: RunContext): Promise<JobOutcome> {
  const log = ctx.log ?? (() => undefined);
  const training = resolveTraining(spec);
  const progress = (p: Partial<JobProgress> & { phase: string }) =>
    ctx.onProgress?.({ epoch: 0, epochs: training.epochs, batch: 0, batches: 0, loss: null, accuracy: null, valLoss: null, valAccuracy: null, ...p });

  await progress({ phase: 'loading' });
  // Names are relative to the job's tenant (ctx.layout); `public/<name>` reads the shared namespace.
  const dataset = ctx.layout.datasetRef(spec.dataset.name);
  const description = await new DatasetCatalog(dataset.layout, ctx.datasetLimits).describe(dataset.name);
  const numClasses = description.classes.length;

  let target: TargetModel | null = null;
  let resume: ResumeState | null = null;
  let data: Prepared | null = null;
  let sourcePreprocess: Preprocess | null = null;
  try {
    await progress({ phase: 'building' });
    target = await buildTarget(spec, {
      datasetShape: description.inputShape as Shape3 | null,
      numClasses,
      loadSource: async (ref) => {
        const source = ctx.layout.checkpointRef(ref);
        const contents = await readCheckpoint(source.layout.checkpointDir(source.name, '/source/checkpoint'));
        sourcePreprocess = contents.manifest?.preprocess ?? null;
        return contents;
      },
    });
    await reportRestore(spec, target, ctx, log);

    const epochCheckpoints = ctx.checkpointKeep ? new EpochCheckpoints(ctx.layout, ctx.jobId, ctx.checkpointKeep) : null;
    resume = await resumeFrom(epochCheckpoints, target, ctx, log);

    const preprocess = await preprocessFor(spec, ctx, target, sourcePreprocess);
    data = await prepareData(spec, ctx, target, description.splits.test !== undefined && description.splits.test !== null, numClasses, preprocess);
    const model = target.model;
    const trained = await train(target, data.train, data.val, {
      ...trainingOptions(spec, ctx, target.task === 'classification' ? numClasses : 0),
      inputRange: scaledRange(preprocess.scaling, preprocess.channels),
      onWarning: (message) => ctx.onWarning?.(message),
      resume,
      onCheckpoint: epochCheckpoints
        ? async (position, optimizers, best) => {
            await ctx.beforeSave?.('training-checkpoint');
            await epochCheckpoints.save(position, model, optimizers, best);
          }
        : undefined,
      onBatch: (p) => progress({ ...p }),
      onEpoch: async (m, p) => {
        await progress({ ...p, valLoss: m.valLoss, valAccuracy: m.valAccuracy });
        await ctx.onEpoch?.(m);
      },
    });

    await progress({ phase: 'evaluating', epoch: trained.epochsRun, batches: 0 });
    const metrics = await evaluateTarget(target, data, numClasses, ctx.maxConfusionClasses);

    await progress({ phase: 'saving', epoch: trained.epochsRun });
    await ctx.beforeSave?.('output');
    return await saveOutcome(spec, ctx, target, trained, metrics, data.classes, preprocess);
  } finally {
    if (data) await Promise.all(data.stores.map((s) => s.close()));
    resume?.dispose();
    if (target) dispose(target.model);
  }
}

/** Tells the job's log what was restored, and warns about selected weights the target lacks. */
async function reportRestore(spec: JobSpec, target: TargetModel, ctx: RunContext, log: NonNullable<RunContext['log']>): Promise<void> {
  if (!target.restore) return;
  const { restored, skipped } = target.restore;
  log('restored weights', { restored: restored.length, skipped });
  await ctx.onEvent?.(`Restored ${restored.length} weights from "${spec.source!.checkpoint}".`, { restored });
  if (skipped.length > 0) {
    await ctx.onWarning?.(
      `The restore regex selected ${skipped.length} weights the target network does not have; they were skipped: ${skipped.slice(0, 8).join(', ')}${skipped.length > 8 ? ', …' : ''}.`,
      { skipped },
    );
  }
}

/** Loads the job's newest training checkpoint into the target, if it has one. */
async function resumeFrom(checkpoints: EpochCheckpoints | null, target: TargetModel, ctx: RunContext, log: NonNullable<RunContext['log']>): Promise<ResumeState | null> {
  const resume = checkpoints ? await checkpoints.resumeInto(target.model) : null;
  if (resume) {
    const { epoch, batch } = resume.position;
    log('resuming', { epoch, batch });
    await ctx.onEvent?.(`Resuming from the checkpoint at epoch ${epoch}${batch ? `, batch ${batch}` : ''} instead of starting over.`, { resume: { epoch, batch } });
  }
  return resume;
}

/**
 * The preprocessing this job trains with: the spec's fields, else the source checkpoint's record
 * (a pretrained network keeps what it knows only if fed as it was trained), else the default.
 */
async function preprocessFor(spec: JobSpec, ctx: RunContext, target: TargetModel, fromSource: Preprocess | null): Promise<Preprocess> {
  const preprocess = resolvePreprocess(spec.dataset.preprocess, fromSource, target.inputShape[2]);
  if (fromSource && !spec.dataset.preprocess) {
    await ctx.onEvent?.(`Preprocessing as the source checkpoint was trained: ${describePreprocess(preprocess)}.`, { preprocess });
  }
  return preprocess;
}

/** The trainer's options from the spec (defaults written in) and the run's context. */
function trainingOptions(spec: JobSpec, ctx: RunContext, classes: number): Omit<TrainOptions, 'resume' | 'onCheckpoint' | 'onBatch' | 'onEpoch'> {
  const training = resolveTraining(spec);
  return {
    classes,
    epochs: training.epochs,
    batchSize: training.batchSize,
    optimizer: training.optimizer,
    learningRate: training.learningRate,
    seed: training.seed,
    earlyStopping: training.earlyStopping,
    maxRuntimeSeconds: training.maxRuntimeSeconds,
    select: spec.output.select ?? DEFAULT_OUTPUT_SELECT,
    featureCacheMaxBytes: ctx.featureCacheMaxBytes,
    featureCacheDiskMaxBytes: ctx.featureCacheDiskMaxBytes ?? 0,
    // DATA_DIR/jobs/<id>/features/: the job's folder, removed with the job.
    spillDir: path.join(path.dirname(trainingCheckpointsDir(ctx.layout, ctx.jobId)), 'features'),
    augment: training.augment,
    prefetchBatches: ctx.prefetchBatches,
    signal: ctx.signal,
    interrupt: ctx.interrupt,
  };
}

/** Final metrics on the validation and test splits, rounded for the job record. */
async function evaluateTarget(target: TargetModel, data: Prepared, numClasses: number, maxConfusionClasses?: number) {
  const { fn: lossFn } = lossFor(target.model, target.task);
  const evalOpts = { lossFn, batchSize: inferenceBatch(data.train.x), classes: target.task === 'classification' ? numClasses : 0, withConfusion: true, classNames: data.classes, maxConfusionClasses };
  const validation = data.val ? await evaluate(target.model, data.val, evalOpts) : null;
  const test = data.test ? await evaluate(target.model, data.test, evalOpts) : null;
  return { validation: publicMetrics(validation), test: publicMetrics(test) };
}

type PublicMetrics = Awaited<ReturnType<typeof evaluateTarget>>;

/** Writes the output checkpoint and its manifest; returns them with the job's result. */
async function saveOutcome(spec: JobSpec, ctx: RunContext, target: TargetModel, trained: TrainResult, metrics: PublicMetrics, classes: string[], preprocess: Preprocess): Promise<JobOutcome> {
  const manifest = await saveCheckpoint(ctx.layout, spec.output.checkpoint, target.model, {
    jobId: ctx.jobId,
    jobType: spec.type,
    task: target.task,
    inputShape: target.inputShape,
    labels: target.task === 'classification' ? classes : undefined,
    spec: spec as unknown as Record<string, unknown>,
    source: spec.source
      ? { checkpoint: spec.source.checkpoint, restored: target.restore?.restored ?? [], skipped: target.restore?.skipped ?? [], mismatched: [] }
      : null,
    frozen: target.frozen,
    lrMultipliers: target.lrMultipliers,
    backend: ctx.backend,
    preprocess,
    metrics: { ...metrics, training: { epochsRun: trained.epochsRun, stoppedEarly: trained.stoppedEarly, bestEpoch: trained.bestEpoch, seconds: trained.seconds, samplesPerSecond: trained.samplesPerSecond, featureCache: trained.featureCache, featureCacheMode: trained.featureCacheMode, featureCacheReason: trained.featureCacheReason } },
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
}

/**
 * The splits as views over the sample stores (the on-volume cache, or uint8 in memory for IDX):
 * index arrays and labels in memory, pixels read and scaled per batch. `stores` are closed by the caller.
 */
async function prepareData(spec: JobSpec, ctx: RunContext, target: TargetModel, hasTest: boolean, numClasses: number, preprocess: Preprocess): Promise<Prepared> {
  const { seed } = resolveTraining(spec);
  if (preprocess.channels !== target.inputShape[2]) {
    throw new UnprocessableError(
      'dataset_shape_mismatch',
      `dataset.preprocess.channels is ${preprocess.channels} but the model's input ${JSON.stringify(target.inputShape)} has ${target.inputShape[2]} channels.`,
      '/dataset/preprocess/channels',
    );
  }
  const stores: SampleStore[] = [];
  // `name` or `public/name`: where the job's tenant finds it.
  const dataset = ctx.layout.datasetRef(spec.dataset.name);
  const open = async (split: 'train' | 'test') => {
    const { store, origin } = await openSamples(dataset.layout, dataset.name, {
      split,
      inputShape: target.inputShape,
      resize: preprocess.resize,
      limits: ctx.datasetLimits,
      shardBytes: ctx.sampleCacheShardBytes ?? DEFAULT_SHARD_BYTES,
      onBuild: (done, total) => ctx.onProgress?.({ phase: 'decoding', epoch: 0, epochs: resolveTraining(spec).epochs, batch: done, batches: total, loss: null, accuracy: null, valLoss: null, valAccuracy: null }),
    });
    stores.push(store);
    if (origin.source === 'cache-built') await ctx.onEvent?.(`Decoded the ${split} split once into the sample cache (${store.count} images in ${origin.decodeSeconds.toFixed(1)} s); later jobs at this input shape read it.`, { sampleCache: origin });
    ctx.log?.('samples', { split, ...origin, count: store.count });
    return store;
  };
  try {
    const store = await open('train');
    const labels = store.labels;
    const fraction = spec.dataset.validationSplit ?? DEFAULT_VALIDATION_SPLIT;
    let trainIdx: Int32Array;
    let valIdx: Int32Array;
    if (fraction > 0) {
      ({ trainIdx, valIdx } = stratifiedSplit(labels, fraction, seed, numClasses));
    } else {
      trainIdx = Int32Array.from({ length: labels.length }, (_, i) => i);
      valIdx = new Int32Array(0);
    }
    const limit = spec.dataset.limit;
    if (limit !== undefined && limit < trainIdx.length) {
      const trainLabels = Int32Array.from(trainIdx, (i) => labels[i]);
      const { valIdx: picked } = stratifiedSplit(trainLabels, limit / trainIdx.length, seed + 1, numClasses);
      trainIdx = Int32Array.from(picked.subarray(0, limit), (j) => trainIdx[j]);
    }
    if (trainIdx.length === 0) throw new UnprocessableError('dataset_too_small', 'No training samples remain after the validation split; lower dataset.validationSplit or add data.', '/dataset/validationSplit');

    const classification = target.task === 'classification';
    const view = (from: SampleStore, idx: Int32Array | null): Split => ({
      x: scaledRows(from, idx, preprocess),
      labels: classification ? (idx ? Int32Array.from(idx, (i) => from.labels[i]) : from.labels) : null,
    });
    const test = hasTest ? view(await open('test'), null) : null;
    return { train: view(store, trainIdx), val: valIdx.length > 0 ? view(store, valIdx) : null, test, classes: store.classes, stores };
  } catch (err) {
    await Promise.all(stores.map((s) => s.close()));
    throw err;
  }
}

/** What the data loaders did to this input shape (src/storage/datasets: stretch, channels, bytes / 255). */
function round(v: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function publicMetrics(m: Metrics | null) {
  if (!m) return null;
  return { ...m, loss: round(m.loss, 6), accuracy: m.accuracy === null ? null : round(m.accuracy, 6) };
}
