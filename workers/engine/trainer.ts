import * as tf from '@tensorflow/tfjs';
import { GraftError, UnprocessableError } from '../../src/errors';
import { Random, shuffleInPlace } from './data/random';
import { evaluate, type Metrics } from './evaluate';
import type { ResumeState, TrainingPosition } from './epoch-checkpoints';
import { count, oneHotRows, rows, type Split } from './host-data';
import { extractFeatures, featureBytes, planFeatureSplit } from './feature-cache';
import { correctCount, lossFor } from './losses';
import type { TargetModel } from './model';

/**
 * The training loop. Written by hand rather than with model.fit because graft needs what fit
 * lacks: one optimizer per learning-rate group (Adam is scale-invariant, so scaling gradients
 * cannot implement a multiplier), frozen-prefix feature caching, an AbortSignal checked between
 * batches, per-batch progress, NaN detection and best-epoch selection.
 */
export interface EpochMetrics {
  epoch: number;
  loss: number;
  accuracy: number | null;
  valLoss: number | null;
  valAccuracy: number | null;
  seconds: number;
}

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

export async function train(target: TargetModel, trainSplit: Split, valSplit: Split | null, opts: TrainOptions): Promise<TrainResult> {
  const started = performance.now();
  const n = count(trainSplit.x);
  const batches = Math.ceil(n / opts.batchSize);
  const { fn: lossFn } = lossFor(target.model, target.task);
  const classification = target.task === 'classification';
  const optimizers: tf.Optimizer[] = [];
  let snapshot: tf.Tensor[] | null = null;

  const checkAbort = () => {
    if (opts.signal?.aborted) throw new JobCancelledError();
    // Time spent by earlier attempts counts too: a resumed job does not get a fresh budget.
    const spent = (opts.resume?.position.trainSeconds ?? 0) + (performance.now() - started) / 1000;
    if (opts.maxRuntimeSeconds && spent > opts.maxRuntimeSeconds) {
      throw new UnprocessableError('timeout', `Training exceeded training.maxRuntimeSeconds (${opts.maxRuntimeSeconds} s).`, '/training/maxRuntimeSeconds');
    }
  };

  try {
    // 1. Feature cache: train the suffix on precomputed prefix outputs when that is exact.
    let model = target.model;
    let train = trainSplit;
    let val = valSplit;
    const split = opts.featureCacheMaxBytes > 0 ? planFeatureSplit(target.model) : null;
    const useCache = split !== null && featureBytes(split, n + (valSplit ? count(valSplit.x) : 0)) <= opts.featureCacheMaxBytes;
    if (useCache) {
      const report = (done: number) => opts.onBatch?.({ phase: 'caching', epoch: 0, epochs: opts.epochs, batch: Math.ceil(done / EVAL_BATCH), batches: Math.ceil(n / EVAL_BATCH), loss: null, accuracy: null, samplesPerSecond: null });
      const features = await extractFeatures(split.prefix, trainSplit.x, EVAL_BATCH, async (done) => {
        checkAbort();
        await report(done);
      });
      // A reconstruction target stays the original input; only the network's input changes.
      train = { x: features, labels: trainSplit.labels, target: trainSplit.x };
      if (valSplit) val = { x: await extractFeatures(split.prefix, valSplit.x, EVAL_BATCH), labels: valSplit.labels, target: valSplit.x };
      model = split.suffix;
    }

    // 2. One optimizer per learning-rate multiplier.
    const groups = new Map<number, tf.Variable[]>();
    for (const layer of model.layers) {
      const m = target.lrMultipliers[layer.name];
      if (m === undefined) continue;
      const vars = layer.trainableWeights.map((w) => w.read() as tf.Variable);
      groups.set(m, [...(groups.get(m) ?? []), ...vars]);
    }
    const allVars = [...groups.values()].flat();
    const plan = [...groups].map(([m, vars]) => {
      const opt = makeOptimizer(opts.optimizer, opts.learningRate * m);
      optimizers.push(opt);
      return { opt, names: vars.map((v) => v.name) };
    });

    // 3. Where to start: from scratch, or exactly where a checkpoint left off.
    const resume = opts.resume ?? null;
    let pos: TrainingPosition = resume
      ? { ...resume.position, history: [...resume.position.history] }
      : { epoch: 1, batch: 0, rngState: new Random(opts.seed).state(), lossSum: 0, correct: 0, samplesSeen: 0, trainSeconds: 0, history: [], best: null, bestEpoch: null, sinceBest: 0 };
    if (resume) {
      for (const [i, opt] of optimizers.entries()) if (resume.optimizerWeights[i]?.length) await opt.setWeights(resume.optimizerWeights[i]);
      if (resume.bestWeights) snapshot = resume.bestWeights.map((t) => tf.clone(t));
    }
    const history = pos.history;
    let stoppedEarly = false;
    const order = Int32Array.from({ length: n }, (_, i) => i);

    /** Saves the position reached (after `pos` was updated) unless nothing can be saved. */
    const checkpoint = async () => opts.onCheckpoint?.({ ...pos, history: [...pos.history] }, optimizers, snapshot);

    while (pos.epoch <= opts.epochs) {
      const epoch = pos.epoch;
      const epochStart = performance.now();
      const rng = Random.fromState(pos.rngState);
      order.forEach((_, i) => (order[i] = i));
      shuffleInPlace(order, rng);
      for (let b = pos.batch; b < batches; b++) {
        if (opts.interrupt?.aborted) {
          // Hand-over (worker shutting down): save the exact position, then stop.
          pos = { ...pos, batch: b, trainSeconds: pos.trainSeconds + (performance.now() - epochStart) / 1000 };
          await checkpoint();
          throw new JobInterruptedError(epoch, b);
        }
        checkAbort();
        const idx = order.subarray(b * opts.batchSize, Math.min(n, (b + 1) * opts.batchSize));
        const stats = tf.tidy(() => {
          const xb = rows(train.x, idx);
          const yb = classification ? oneHotRows(train.labels!, idx, opts.classes) : rows(train.target ?? train.x, idx);
          let pred: tf.Tensor | null = null;
          const { value, grads } = tf.variableGrads(() => {
            pred = tf.keep(model.apply(xb, { training: true }) as tf.Tensor);
            return lossFn(yb, pred);
          }, allVars);
          for (const { opt, names } of plan) {
            const mine = names.filter((name) => grads[name] !== undefined);
            if (mine.length > 0) opt.applyGradients(Object.fromEntries(mine.map((name) => [name, grads[name]])));
          }
          const hits = classification ? correctCount(yb, pred!) : tf.scalar(0);
          // Probability clipping in the loss can mask NaN outputs, so look at the outputs too.
          const broken = tf.cast(tf.logicalNot(tf.all(tf.isFinite(pred!))), 'float32');
          (pred as tf.Tensor | null)?.dispose(); // kept past variableGrads' own scope; freed here
          return tf.stack([value, hits, broken]);
        });
        const [batchLoss, hits, broken] = await stats.data();
        stats.dispose();
        if (!Number.isFinite(batchLoss) || broken > 0) {
          throw new UnprocessableError(
            'diverged',
            `Training diverged: ${broken > 0 ? 'the network output' : 'the loss'} became ${broken > 0 ? 'NaN/Infinity' : batchLoss} at epoch ${epoch}, batch ${b + 1}. Lower training.learningRate (now ${opts.learningRate}) or check the data.`,
            '/training/learningRate',
          );
        }
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
      pos.trainSeconds += (performance.now() - epochStart) / 1000;

      let valMetrics: Metrics | null = null;
      if (val) valMetrics = await evaluate(model, val, { lossFn, batchSize: EVAL_BATCH, classes: opts.classes, withConfusion: false });
      const metrics: EpochMetrics = {
        epoch,
        loss: pos.lossSum / n,
        accuracy: classification ? pos.correct / n : null,
        valLoss: valMetrics?.loss ?? null,
        valAccuracy: valMetrics?.accuracy ?? null,
        seconds: (performance.now() - epochStart) / 1000,
      };
      history.push(metrics);
      await opts.onEpoch?.(metrics, { phase: 'training', epoch, epochs: opts.epochs, batch: batches, batches, loss: metrics.loss, accuracy: metrics.accuracy, samplesPerSecond: pos.samplesSeen / pos.trainSeconds });

      if (metrics.valLoss !== null) {
        const minDelta = opts.earlyStopping?.minDelta ?? 0;
        if (metrics.valLoss < (pos.best ?? Infinity) - minDelta) {
          pos.best = metrics.valLoss;
          pos.bestEpoch = epoch;
          pos.sinceBest = 0;
          if (opts.select === 'best') {
            snapshot?.forEach((t) => t.dispose());
            snapshot = target.model.getWeights().map((w) => tf.clone(w));
          }
        } else {
          pos.sinceBest++;
        }
        if (opts.earlyStopping && pos.sinceBest >= opts.earlyStopping.patience) stoppedEarly = true;
      }
      // The next epoch starts from here: its shuffle continues this epoch's generator.
      pos = { ...pos, epoch: epoch + 1, batch: 0, rngState: rng.state(), lossSum: 0, correct: 0 };
      if (stoppedEarly) break;
      if (pos.epoch <= opts.epochs) await checkpoint();
    }

    if (opts.select === 'best' && snapshot) target.model.setWeights(snapshot);
    const seconds = (performance.now() - started) / 1000;
    return {
      history,
      epochsRun: history.length,
      stoppedEarly,
      bestEpoch: pos.bestEpoch,
      featureCache: useCache,
      seconds,
      samplesPerSecond: pos.samplesSeen / Math.max(pos.trainSeconds, 1e-9),
      resumedFrom: resume ? { epoch: resume.position.epoch, batch: resume.position.batch } : null,
    };
  } finally {
    (snapshot as tf.Tensor[] | null)?.forEach((t) => t.dispose());
    optimizers.forEach((o) => o.dispose());
  }
}
