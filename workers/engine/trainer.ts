import * as tf from '@tensorflow/tfjs';
import { GraftError, UnprocessableError } from '../../src/errors';
import { Random, shuffleInPlace } from './data/random';
import { evaluate, type Metrics } from './evaluate';
import type { EpochMetrics, ResumeState, TrainingPosition } from './training-state';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { augments, type Augment } from '../../src/spec/preprocess';
import { augmentBatch, augmentRandom } from './data/augment';
import { closeSplit, count, inferenceBatch, type Split } from './host-data';
import { extractFeatures, featureBytes, planFeatureSplit, type FeatureDestination } from './feature-cache';
import { correctCount, lossFor, type LossFn } from './losses';
import type { TargetModel } from './model';

export type { EpochMetrics } from './training-state';

/**
 * The training loop. Written by hand rather than with model.fit because graft needs what fit
 * lacks: one optimizer per learning-rate group (Adam is scale-invariant, so scaling gradients
 * cannot implement a multiplier), frozen-prefix feature caching, an AbortSignal checked between
 * batches, per-batch progress, NaN detection and best-epoch selection.
 */
export interface BatchProgress {
  phase: 'caching' | 'training';
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  loss: number | null;
  accuracy: number | null;
  samplesPerSecond: number | null;
}

export type { Split } from './host-data';

export interface TrainOptions {
  /** Number of classes (classification); 0 for reconstruction. */
  classes: number;
  epochs: number;
  batchSize: number;
  optimizer: 'adam' | 'sgd' | 'momentum' | 'rmsprop' | 'adagrad';
  learningRate: number;
  seed: number;
  earlyStopping?: { patience: number; minDelta?: number };
  maxRuntimeSeconds?: number;
  select: 'last' | 'best';
  /** Largest feature cache held in memory; 0 turns caching off. */
  featureCacheMaxBytes: number;
  /** Largest feature cache spilled to a file in `spillDir` when memory is not enough; 0/absent = never spill. */
  featureCacheDiskMaxBytes?: number;
  spillDir?: string;
  /** Random augmentation per batch (turns feature caching off: it changes the frozen prefix's input). */
  augment?: Augment;
  /** Width of the scaled input range (1 for unit, 2 for symmetric): brightness is a fraction of it. */
  inputRange?: number;
  /** Batches read ahead of the one training (default 2). */
  prefetchBatches?: number;
  /** Something the user should know (e.g. why the feature cache is off). */
  onWarning?(message: string): Promise<void> | void;
  signal?: AbortSignal;
  /** Aborted when the worker shuts down: checkpoint at the next batch boundary, then stop. */
  interrupt?: AbortSignal;
  /** Continue from a saved position (EpochCheckpoints.resumeInto loaded the weights). */
  resume?: ResumeState | null;
  /** Called after every epoch but the last, and on interruption, to persist the position. */
  onCheckpoint?(position: TrainingPosition, optimizers: tf.Optimizer[], bestWeights: tf.Tensor[] | null): Promise<void>;
  onBatch?(p: BatchProgress): Promise<void> | void;
  onEpoch?(m: EpochMetrics, progress: BatchProgress): Promise<void> | void;
}

export interface TrainResult {
  history: EpochMetrics[];
  epochsRun: number;
  stoppedEarly: boolean;
  bestEpoch: number | null;
  featureCache: boolean;
  /** Where the feature cache lived, or null without one; `featureCacheReason` says why not when it was wanted. */
  featureCacheMode: 'memory' | 'disk' | null;
  featureCacheReason: string | null;
  /** Wall-clock seconds of the whole training phase (caching included). */
  seconds: number;
  samplesPerSecond: number;
  resumedFrom: { epoch: number; batch: number } | null;
}

const MOMENTUM = 0.9;

/** The worker is shutting down; the position was checkpointed and another worker continues. */
export class JobInterruptedError extends Error {
  constructor(
    readonly epoch: number,
    readonly batch: number,
  ) {
    super(`interrupted by worker shutdown at epoch ${epoch}, batch ${batch}`);
    this.name = 'JobInterruptedError';
  }
}

export class JobCancelledError extends GraftError {
  constructor() {
    super('cancelled', 'The job was cancelled.', { statusCode: 409 });
  }
}

function makeOptimizer(name: TrainOptions['optimizer'], lr: number): tf.Optimizer {
  switch (name) {
    case 'adam':
      return tf.train.adam(lr);
    case 'sgd':
      return tf.train.sgd(lr);
    case 'momentum':
      return tf.train.momentum(lr, MOMENTUM);
    case 'rmsprop':
      return tf.train.rmsprop(lr);
    case 'adagrad':
      return tf.train.adagrad(lr);
  }
}


const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The network actually trained and its data: the whole target, or its suffix on cached features. */
interface TrainingInputs {
  model: tf.LayersModel;
  train: Split;
  val: Split | null;
  useCache: boolean;
  cacheMode: 'memory' | 'disk' | null;
  cacheReason: string | null;
  /** Feature splits this run created (and must close: a spilled cache deletes its files). */
  owned: Split[];
}

/** One batch's host data, read ahead of its step. */
interface HostBatch {
  x: Float32Array;
  y: Float32Array;
}

/** One optimizer per learning-rate multiplier, with the variables it updates. */
interface OptimizerGroup {
  opt: tf.Optimizer;
  names: string[];
}

export async function train(target: TargetModel, trainSplit: Split, valSplit: Split | null, opts: TrainOptions): Promise<TrainResult> {
  const run = new TrainingRun(target, opts, count(trainSplit.x));
  try {
    return await run.run(trainSplit, valSplit);
  } finally {
    await run.dispose();
  }
}

/** One call of `train`: the state that lives from the first batch to the result. */
class TrainingRun {
  private readonly started = performance.now();
  private readonly batches: number;
  private readonly lossFn: LossFn;
  private readonly classification: boolean;
  private readonly optimizers: tf.Optimizer[] = [];
  private groups: OptimizerGroup[] = [];
  private allVars: tf.Variable[] = [];
  /** Weights of the best epoch so far (output.select "best"). */
  private snapshot: tf.Tensor[] | null = null;
  private pos!: TrainingPosition;
  private owned: Split[] = [];

  constructor(
    private readonly target: TargetModel,
    private readonly opts: TrainOptions,
    private readonly n: number,
  ) {
    this.batches = Math.ceil(n / opts.batchSize);
    this.lossFn = lossFor(target.model, target.task).fn;
    this.classification = target.task === 'classification';
  }

  async run(trainSplit: Split, valSplit: Split | null): Promise<TrainResult> {
    const { opts, target } = this;
    const inputs = await this.inputs(trainSplit, valSplit);
    this.owned = inputs.owned;
    this.createOptimizers(inputs.model);
    const resume = await this.start();
    let stoppedEarly = false;
    const order = Int32Array.from({ length: this.n }, (_, i) => i);
    while (this.pos.epoch <= opts.epochs) {
      const epoch = this.pos.epoch;
      const epochStart = performance.now();
      const rng = Random.fromState(this.pos.rngState);
      order.forEach((_, i) => (order[i] = i));
      shuffleInPlace(order, rng);
      await this.trainEpoch(inputs, order, epochStart);
      const metrics = await this.finishEpoch(inputs, epochStart);
      stoppedEarly = this.trackBest(metrics);
      // The next epoch starts from here: its shuffle continues this epoch's generator.
      this.pos = { ...this.pos, epoch: epoch + 1, batch: 0, rngState: rng.state(), lossSum: 0, correct: 0 };
      if (stoppedEarly) break;
      if (this.pos.epoch <= opts.epochs) await this.checkpoint();
    }

    if (opts.select === 'best' && this.snapshot) target.model.setWeights(this.snapshot);
    const { history } = this.pos;
    return {
      history,
      epochsRun: history.length,
      stoppedEarly,
      bestEpoch: this.pos.bestEpoch,
      featureCache: inputs.useCache,
      featureCacheMode: inputs.cacheMode,
      featureCacheReason: inputs.cacheReason,
      seconds: (performance.now() - this.started) / 1000,
      samplesPerSecond: this.pos.samplesSeen / Math.max(this.pos.trainSeconds, 1e-9),
      resumedFrom: resume ? { epoch: resume.position.epoch, batch: resume.position.batch } : null,
    };
  }

  async dispose(): Promise<void> {
    this.snapshot?.forEach((t) => t.dispose());
    this.optimizers.forEach((o) => o.dispose());
    for (const split of this.owned) await closeSplit(split);
    this.owned = [];
  }

  /** Cancellation and the runtime budget, checked between batches. */
  private checkAbort(): void {
    const { opts } = this;
    if (opts.signal?.aborted) throw new JobCancelledError();
    // Time spent by earlier attempts counts too: a resumed job does not get a fresh budget.
    const spent = (opts.resume?.position.trainSeconds ?? 0) + (performance.now() - this.started) / 1000;
    if (opts.maxRuntimeSeconds && spent > opts.maxRuntimeSeconds) {
      throw new UnprocessableError('timeout', `Training exceeded training.maxRuntimeSeconds (${opts.maxRuntimeSeconds} s).`, '/training/maxRuntimeSeconds');
    }
  }

  /**
   * Feature cache: train the suffix on precomputed prefix outputs when that is exact. In memory
   * up to featureCacheMaxBytes, spilled to a file up to featureCacheDiskMaxBytes, else off.
   */
  private async inputs(trainSplit: Split, valSplit: Split | null): Promise<TrainingInputs> {
    const { opts, target, n } = this;
    const plain = async (cacheReason: string | null): Promise<TrainingInputs> => {
      if (cacheReason) await opts.onWarning?.(`Feature caching is off: ${cacheReason}.`);
      return { model: target.model, train: trainSplit, val: valSplit, useCache: false, cacheMode: null, cacheReason, owned: [] };
    };
    if (opts.featureCacheMaxBytes <= 0) return plain(null);
    const split = planFeatureSplit(target.model);
    if (!split) return plain(null);
    if (augments(opts.augment)) return plain('training.augment changes the frozen prefix\'s input every epoch, so its features cannot be computed once');
    const bytes = featureBytes(split, n + (valSplit ? count(valSplit.x) : 0));
    const disk = opts.featureCacheDiskMaxBytes ?? 0;
    let mode: 'memory' | 'disk';
    if (bytes <= opts.featureCacheMaxBytes) mode = 'memory';
    else if (bytes <= disk && opts.spillDir) mode = 'disk';
    else return plain(`the features would take ${Math.ceil(bytes / 2 ** 20)} MB, above FEATURE_CACHE_MAX_MB${disk > 0 ? ' and FEATURE_CACHE_DISK_MAX_MB' : ''}`);
    if (mode === 'disk') await fs.mkdir(opts.spillDir!, { recursive: true });
    const destination = (which: string): FeatureDestination => (mode === 'memory' ? { kind: 'memory' } : { kind: 'file', file: path.join(opts.spillDir!, `features-${which}.f32`) });
    const batch = inferenceBatch(trainSplit.x);
    const report = (done: number) => opts.onBatch?.({ phase: 'caching', epoch: 0, epochs: opts.epochs, batch: Math.ceil(done / batch), batches: Math.ceil(n / batch), loss: null, accuracy: null, samplesPerSecond: null });
    const owned: Split[] = [];
    try {
      const features = await extractFeatures(split.prefix, trainSplit.x, batch, async (done) => {
        this.checkAbort();
        await report(done);
      }, destination('train'));
      // A reconstruction target stays the original input; only the network's input changes.
      const train: Split = { x: features, labels: trainSplit.labels, target: trainSplit.x };
      owned.push({ x: features, labels: null });
      let val: Split | null = null;
      if (valSplit) {
        const valFeatures = await extractFeatures(split.prefix, valSplit.x, inferenceBatch(valSplit.x), () => this.checkAbort(), destination('val'));
        owned.push({ x: valFeatures, labels: null });
        val = { x: valFeatures, labels: valSplit.labels, target: valSplit.x };
      }
      return { model: split.suffix, train, val, useCache: true, cacheMode: mode, cacheReason: null, owned };
    } catch (err) {
      for (const o of owned) await closeSplit(o);
      throw err;
    }
  }

  /** One optimizer per learning-rate multiplier. */
  private createOptimizers(model: tf.LayersModel): void {
    const byMultiplier = new Map<number, tf.Variable[]>();
    for (const layer of model.layers) {
      const m = this.target.lrMultipliers[layer.name];
      if (m === undefined) continue;
      const vars = layer.trainableWeights.map((w) => w.read() as tf.Variable);
      byMultiplier.set(m, [...(byMultiplier.get(m) ?? []), ...vars]);
    }
    this.allVars = [...byMultiplier.values()].flat();
    this.groups = [...byMultiplier].map(([m, vars]) => {
      const opt = makeOptimizer(this.opts.optimizer, this.opts.learningRate * m);
      this.optimizers.push(opt);
      return { opt, names: vars.map((v) => v.name) };
    });
  }

  /** Where to start: from scratch, or exactly where a checkpoint left off. */
  private async start(): Promise<ResumeState | null> {
    const resume = this.opts.resume ?? null;
    this.pos = resume
      ? { ...resume.position, history: [...resume.position.history] }
      : { epoch: 1, batch: 0, rngState: new Random(this.opts.seed).state(), lossSum: 0, correct: 0, samplesSeen: 0, trainSeconds: 0, history: [], best: null, bestEpoch: null, sinceBest: 0 };
    if (resume) {
      for (const [i, opt] of this.optimizers.entries()) if (resume.optimizerWeights[i]?.length) await opt.setWeights(resume.optimizerWeights[i]);
      if (resume.bestWeights) this.snapshot = resume.bestWeights.map((t) => tf.clone(t));
    }
    return resume;
  }

  /** Saves the position reached (after `pos` was updated) unless nothing can be saved. */
  private async checkpoint(): Promise<void> {
    await this.opts.onCheckpoint?.({ ...this.pos, history: [...this.pos.history] }, this.optimizers, this.snapshot);
  }

  /** The remaining batches of the epoch in progress, in the shuffled `order`. */
  private async trainEpoch(inputs: TrainingInputs, order: Int32Array, epochStart: number): Promise<void> {
    const { opts, batches } = this;
    const epoch = this.pos.epoch;
    const indices = (b: number) => order.subarray(b * opts.batchSize, Math.min(this.n, (b + 1) * opts.batchSize));
    // Reads run ahead on libuv's threads while the step computes: the disk is not on the critical path.
    const ahead = new Map<number, Promise<HostBatch>>();
    const fetch = (b: number) => {
      if (b >= batches || ahead.has(b)) return;
      const p = this.readBatch(inputs, indices(b));
      p.catch(() => undefined); // awaited (and thrown) when its turn comes
      ahead.set(b, p);
    };
    const depth = Math.max(0, opts.prefetchBatches ?? 2);
    try {
      await this.epochBatches(inputs, epoch, epochStart, indices, (b) => {
        for (let k = b; k <= b + depth; k++) fetch(k);
        const p = ahead.get(b)!;
        ahead.delete(b);
        return p;
      });
    } finally {
      // Let reads still in flight finish before their files may be closed.
      await Promise.allSettled(ahead.values());
    }
    this.pos.trainSeconds += (performance.now() - epochStart) / 1000;
  }

  /** Rows and targets of one batch, on the host. */
  private async readBatch(inputs: TrainingInputs, idx: Int32Array): Promise<HostBatch> {
    const { train } = inputs;
    const x = await train.x.read(idx);
    if (this.classification) {
      const classes = this.opts.classes;
      const y = new Float32Array(idx.length * classes);
      for (let k = 0; k < idx.length; k++) y[k * classes + train.labels![idx[k]]] = 1;
      return { x, y };
    }
    return { x, y: train.target && train.target !== train.x ? await train.target.read(idx) : x };
  }

  private async epochBatches(
    inputs: TrainingInputs,
    epoch: number,
    epochStart: number,
    indices: (b: number) => Int32Array,
    batchAt: (b: number) => Promise<HostBatch>,
  ): Promise<void> {
    const { opts, batches, classification } = this;
    for (let b = this.pos.batch; b < batches; b++) {
      if (opts.interrupt?.aborted) {
        // Hand-over (worker shutting down): save the exact position, then stop.
        this.pos = { ...this.pos, batch: b, trainSeconds: this.pos.trainSeconds + (performance.now() - epochStart) / 1000 };
        await this.checkpoint();
        throw new JobInterruptedError(epoch, b);
      }
      this.checkAbort();
      const idx = indices(b);
      const stats = this.step(inputs, idx, await batchAt(b), epoch, b);
      const [batchLoss, hits, broken] = await stats.data();
      stats.dispose();
      if (!Number.isFinite(batchLoss) || broken > 0) {
        throw new UnprocessableError(
          'diverged',
          `Training diverged: ${broken > 0 ? 'the network output' : 'the loss'} became ${broken > 0 ? 'NaN/Infinity' : batchLoss} at epoch ${epoch}, batch ${b + 1}. Lower training.learningRate (now ${opts.learningRate}) or check the data.`,
          '/training/learningRate',
        );
      }
      const pos = this.pos;
      pos.lossSum += batchLoss * idx.length;
      pos.correct += hits;
      pos.samplesSeen += idx.length;
      const seen = b * opts.batchSize + idx.length;
      const elapsed = pos.trainSeconds + (performance.now() - epochStart) / 1000;
      await opts.onBatch?.({
        phase: 'training', epoch, epochs: opts.epochs, batch: b + 1, batches,
        loss: pos.lossSum / seen, accuracy: classification ? pos.correct / seen : null,
        samplesPerSecond: elapsed > 0 ? pos.samplesSeen / elapsed : null,
      });
      await yieldToEventLoop();
    }
  }

  /** One optimisation step on the rows `idx`; returns [loss, correct predictions, 1 if outputs are not finite]. */
  private step(inputs: TrainingInputs, idx: Int32Array, batch: HostBatch, epoch: number, b: number): tf.Tensor {
    const { classification, lossFn, opts } = this;
    const { model, train } = inputs;
    const featureShape = train.x.shape.slice(1);
    const targetShape = classification ? [opts.classes] : (train.target ?? train.x).shape.slice(1);
    return tf.tidy(() => {
      let xb = tf.tensor(batch.x, [idx.length, ...featureShape]);
      let yb = tf.tensor(batch.y, [idx.length, ...targetShape]);
      if (augments(opts.augment)) {
        // Seeded by (seed, epoch, batch) alone: a resumed run draws exactly what an uninterrupted one did.
        const augmented = augmentBatch(xb as tf.Tensor4D, opts.augment!, augmentRandom(opts.seed, epoch, b), opts.inputRange ?? 1);
        // A reconstruction target is the same image, transformed the same way.
        if (!classification && batch.y === batch.x) yb = augmented;
        xb = augmented;
      }
      let pred: tf.Tensor | null = null;
      const { value, grads } = tf.variableGrads(() => {
        pred = tf.keep(model.apply(xb, { training: true }) as tf.Tensor);
        return lossFn(yb, pred);
      }, this.allVars);
      for (const { opt, names } of this.groups) {
        const mine = names.filter((name) => grads[name] !== undefined);
        if (mine.length > 0) opt.applyGradients(Object.fromEntries(mine.map((name) => [name, grads[name]])));
      }
      const hits = classification ? correctCount(yb, pred!) : tf.scalar(0);
      // Probability clipping in the loss can mask NaN outputs, so look at the outputs too.
      const broken = tf.cast(tf.logicalNot(tf.all(tf.isFinite(pred!))), 'float32');
      (pred as tf.Tensor | null)?.dispose(); // kept past variableGrads' own scope; freed here
      return tf.stack([value, hits, broken]);
    });
  }

  /** Validation, the epoch's metrics in the history, and the epoch callback. */
  private async finishEpoch(inputs: TrainingInputs, epochStart: number): Promise<EpochMetrics> {
    const { opts, n, classification, pos } = this;
    let valMetrics: Metrics | null = null;
    if (inputs.val) valMetrics = await evaluate(inputs.model, inputs.val, { lossFn: this.lossFn, batchSize: inferenceBatch(inputs.val.x), classes: opts.classes, withConfusion: false });
    const metrics: EpochMetrics = {
      epoch: pos.epoch,
      loss: pos.lossSum / n,
      accuracy: classification ? pos.correct / n : null,
      valLoss: valMetrics?.loss ?? null,
      valAccuracy: valMetrics?.accuracy ?? null,
      seconds: (performance.now() - epochStart) / 1000,
    };
    pos.history.push(metrics);
    await opts.onEpoch?.(metrics, { phase: 'training', epoch: pos.epoch, epochs: opts.epochs, batch: this.batches, batches: this.batches, loss: metrics.loss, accuracy: metrics.accuracy, samplesPerSecond: pos.samplesSeen / pos.trainSeconds });
    return metrics;
  }

  /** Best-epoch bookkeeping; true when early stopping says to stop. */
  private trackBest(metrics: EpochMetrics): boolean {
    const { opts, pos } = this;
    if (metrics.valLoss === null) return false;
    const minDelta = opts.earlyStopping?.minDelta ?? 0;
    if (metrics.valLoss < (pos.best ?? Infinity) - minDelta) {
      pos.best = metrics.valLoss;
      pos.bestEpoch = metrics.epoch;
      pos.sinceBest = 0;
      if (opts.select === 'best') {
        this.snapshot?.forEach((t) => t.dispose());
        this.snapshot = this.target.model.getWeights().map((w) => tf.clone(w));
      }
    } else {
      pos.sinceBest++;
    }
    return Boolean(opts.earlyStopping && pos.sinceBest >= opts.earlyStopping.patience);
  }
}
