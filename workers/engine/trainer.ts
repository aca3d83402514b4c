import * as tf from '@tensorflow/tfjs';
import { GraftError, UnprocessableError } from '../../src/errors';
import { Random, shuffleInPlace } from './data/random';
import { evaluate, type Metrics } from './evaluate';
import type { EpochMetrics, ResumeState, TrainingPosition } from './training-state';
import { count, oneHotRows, rows, type Split } from './host-data';
import { extractFeatures, featureBytes, planFeatureSplit } from './feature-cache';
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
  /** Largest feature cache allowed; 0 turns caching off. */
  featureCacheMaxBytes: number;
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
  /** Wall-clock seconds of the whole training phase (caching included). */
  seconds: number;
  samplesPerSecond: number;
  resumedFrom: { epoch: number; batch: number } | null;
}

const MOMENTUM = 0.9;
const EVAL_BATCH = 512;

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
    run.dispose();
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
      seconds: (performance.now() - this.started) / 1000,
      samplesPerSecond: this.pos.samplesSeen / Math.max(this.pos.trainSeconds, 1e-9),
      resumedFrom: resume ? { epoch: resume.position.epoch, batch: resume.position.batch } : null,
    };
  }

  dispose(): void {
    this.snapshot?.forEach((t) => t.dispose());
    this.optimizers.forEach((o) => o.dispose());
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

  /** Feature cache: train the suffix on precomputed prefix outputs when that is exact. */
  private async inputs(trainSplit: Split, valSplit: Split | null): Promise<TrainingInputs> {
    const { opts, target, n } = this;
    const split = opts.featureCacheMaxBytes > 0 ? planFeatureSplit(target.model) : null;
    const useCache = split !== null && featureBytes(split, n + (valSplit ? count(valSplit.x) : 0)) <= opts.featureCacheMaxBytes;
    if (!useCache) return { model: target.model, train: trainSplit, val: valSplit, useCache };
    const report = (done: number) => opts.onBatch?.({ phase: 'caching', epoch: 0, epochs: opts.epochs, batch: Math.ceil(done / EVAL_BATCH), batches: Math.ceil(n / EVAL_BATCH), loss: null, accuracy: null, samplesPerSecond: null });
    const features = await extractFeatures(split.prefix, trainSplit.x, EVAL_BATCH, async (done) => {
      this.checkAbort();
      await report(done);
    });
    // A reconstruction target stays the original input; only the network's input changes.
    const train = { x: features, labels: trainSplit.labels, target: trainSplit.x };
    const val = valSplit ? { x: await extractFeatures(split.prefix, valSplit.x, EVAL_BATCH), labels: valSplit.labels, target: valSplit.x } : null;
    return { model: split.suffix, train, val, useCache };
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
    const { opts, batches, classification } = this;
    const epoch = this.pos.epoch;
    for (let b = this.pos.batch; b < batches; b++) {
      if (opts.interrupt?.aborted) {
        // Hand-over (worker shutting down): save the exact position, then stop.
        this.pos = { ...this.pos, batch: b, trainSeconds: this.pos.trainSeconds + (performance.now() - epochStart) / 1000 };
        await this.checkpoint();
        throw new JobInterruptedError(epoch, b);
      }
      this.checkAbort();
      const idx = order.subarray(b * opts.batchSize, Math.min(this.n, (b + 1) * opts.batchSize));
      const stats = this.step(inputs, idx);
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
    this.pos.trainSeconds += (performance.now() - epochStart) / 1000;
  }

  /** One optimisation step on the rows `idx`; returns [loss, correct predictions, 1 if outputs are not finite]. */
  private step(inputs: TrainingInputs, idx: Int32Array): tf.Tensor {
    const { classification, lossFn, opts } = this;
    const { model, train } = inputs;
    return tf.tidy(() => {
      const xb = rows(train.x, idx);
      const yb = classification ? oneHotRows(train.labels!, idx, opts.classes) : rows(train.target ?? train.x, idx);
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
    if (inputs.val) valMetrics = await evaluate(inputs.model, inputs.val, { lossFn: this.lossFn, batchSize: EVAL_BATCH, classes: opts.classes, withConfusion: false });
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
