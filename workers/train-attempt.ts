import os from 'node:os';
import { DelayedError, UnrecoverableError, WaitingError, type SandboxedJob } from 'bullmq';
import { DEFAULT_TENANT } from '../src/auth/principal';
import type { Logger } from 'pino';
import type { Config } from '../src/config';
import { ConflictError, GraftError } from '../src/errors';
import type { JobQueue, TrainJobData } from '../src/jobs/job-queue';
import type { JobStore, TransitionRequest } from '../src/jobs/job-store';
import { readOwnOutput } from '../src/jobs/own-output';
import { jobTenant } from '../src/tenants/refs';
import type { Job, JobError, JobProgress, JobResult } from '../src/jobs/types';
import { validateSpec } from '../src/spec/validate';
import { isUseJob, outputOf, type AnyJobSpec } from '../src/spec/schema';
import { datasetLimits } from '../src/storage/datasets';
import type { DataLayout } from '../src/storage/layout';
import type { BackendName } from './engine/backend';
import { runJob, type RunContext } from './engine/run-job';
import { runUseJob } from './engine/use-job';
import { JobCancelledError, JobInterruptedError } from './engine/trainer';
import { AttemptSignals } from './attempt-signals';

/** What a training child process keeps across jobs. */
export interface ChildServices {
  config: Readonly<Config>;
  store: JobStore;
  queue: JobQueue;
  layout: DataLayout;
  logger: Logger;
  backend: BackendName;
}

export type AttemptResult = JobResult | { skipped: string };

const PROGRESS_INTERVAL_MS = 1000;
const now = () => new Date().toISOString();

/** Thrown when this attempt finds another one owns the job: it stops without writing anything. */
class OwnershipLostError extends Error {
  constructor() {
    super('another worker owns this job now');
    this.name = 'OwnershipLostError';
  }
}

/**
 * One attempt at one job, in the training child: begin (start.lua), train, settle. Every write
 * that ends the job is guarded by the attempt's BullMQ lock token, so an attempt that lost its
 * lock (its worker paused, Redis unreachable) neither writes the output nor marks the record;
 * the attempt that owns the job does both. Hand-overs (worker shutdown) go back to the queue
 * through BullMQ with the token and cost no attempt.
 */
export class TrainAttempt {
  private readonly id: string;
  private readonly log: Logger;
  private spec!: AnyJobSpec;
  private tenant = DEFAULT_TENANT;
  /** The volume as the job's tenant sees it (its spec's names are relative to it). */
  private layout!: DataLayout;
  private signals!: AttemptSignals;
  private latest: JobProgress | null = null;
  private lastProgressWrite = 0;

  constructor(
    private readonly services: ChildServices,
    private readonly job: SandboxedJob<TrainJobData>,
    private readonly token: string,
    private readonly bullSignal?: AbortSignal,
  ) {
    this.id = job.data.jobId;
    this.log = services.logger.child({ jobId: this.id, attempt: job.attemptsMade + 1 });
  }

  async run(): Promise<AttemptResult> {
    const record = await this.services.store.get(this.id);
    if (!record) throw new UnrecoverableError(`job record ${this.id} no longer exists`);
    this.layout = this.services.layout.forTenant(jobTenant(record));
    const begun = await this.begin(record);
    if (begun) return begun;
    const written = this.output ? await readOwnOutput(this.layout, this.output, this.id) : null;
    if (written) {
      // An earlier attempt died between writing the checkpoint and recording success.
      this.log.info('checkpoint was already written by an earlier attempt; recording success');
      return this.succeed({ checkpoint: this.output, backend: written.backend ?? this.services.backend, metrics: written.metrics ?? {} });
    }
    this.signals = new AttemptSignals(this.services.store, this.id, this.token, this.bullSignal);
    try {
      // Evaluate and predict jobs are short and write nothing until the end: a retry starts them over.
      const outcome = isUseJob(this.spec) ? await runUseJob(this.spec, this.runContext()) : await runJob(this.spec, this.runContext());
      return await this.succeed(outcome.result);
    } catch (err) {
      return this.settleError(err);
    }
  }

  private get output(): string {
    // A spec that failed validation may lack it, and evaluate/predict jobs write none: then there is no reservation to release.
    return outputOf(this.spec);
  }

  private end(req: Omit<TransitionRequest, 'guard' | 'output' | 'tenant'>) {
    return this.services.store.transition(this.id, { ...req, guard: { token: this.token }, output: this.output, tenant: this.tenant });
  }

  /** Validates the spec and starts the attempt; a result when there is nothing to train. */
  private async begin(record: Job): Promise<AttemptResult | null> {
    this.tenant = record.tenant;
    try {
      this.spec = validateSpec(record.spec);
    } catch (err) {
      this.spec = record.spec;
      await this.end({ from: ['queued', 'running'], to: 'failed', patch: { finishedAt: now(), error: errorBody(err as Error) } });
      throw new UnrecoverableError((err as Error).message);
    }
    // The BullMQ worker is this child's parent: name it, so users can tell which process ran the job.
    const { store, config } = this.services;
    const started = await store.start(this.id, this.output, this.tenant, this.token, `${os.hostname()}:${process.ppid}`, { maxConcurrentJobs: config.TENANT_MAX_CONCURRENT_JOBS });
    switch (started) {
      case 'running':
        return null;
      case 'throttled':
        return this.putBack();
      case 'missing':
        throw new UnrecoverableError(`job record ${this.id} no longer exists`);
      case 'lost':
        throw new WaitingError();
      default:
        this.log.info({ status: started }, 'job already ended; nothing to do');
        return { skipped: started };
    }
  }

  private runContext(): RunContext {
    const { config, store, backend } = this.services;
    const id = this.id;
    return {
      jobId: id,
      layout: this.layout,
      backend,
      featureCacheMaxBytes: config.FEATURE_CACHE_MAX_MB * 1024 * 1024,
      featureCacheDiskMaxBytes: config.FEATURE_CACHE_DISK_MAX_MB * 1024 * 1024,
      sampleCacheShardBytes: config.SAMPLE_CACHE_SHARD_MB * 1024 * 1024,
      prefetchBatches: config.PREFETCH_BATCHES,
      datasetLimits: datasetLimits(config),
      maxConfusionClasses: config.CONFUSION_MATRIX_MAX_CLASSES,
      signal: this.signals.stop.signal,
      interrupt: this.signals.interrupt.signal,
      checkpointKeep: config.EPOCH_CHECKPOINTS_KEEP,
      onProgress: (p) => this.writeProgress(p, p.phase !== 'training' || p.batch === p.batches),
      onEpoch: async (m) => {
        this.log.info({ ...m }, 'epoch finished');
        const val = m.valLoss === null ? '' : `, val_loss ${m.valLoss.toFixed(4)}${m.valAccuracy === null ? '' : `, val_accuracy ${m.valAccuracy.toFixed(4)}`}`;
        await store.events.append(id, { type: 'metrics', message: `Epoch ${m.epoch}: loss ${m.loss.toFixed(4)}${m.accuracy === null ? '' : `, accuracy ${m.accuracy.toFixed(4)}`}${val}.`, data: { ...m } });
      },
      onEvent: (message, data) => store.events.append(id, { message, data }).then(() => undefined),
      onWarning: (message, data) => store.events.append(id, { level: 'warning', message, data }).then(() => undefined),
      log: (msg, data) => this.log.info(data ?? {}, msg),
      beforeSave: (what) => this.mayWrite(what),
    };
  }

  /** Fencing on the volume: training checkpoints only while owning the job; the output only after claiming it (commit.lua). */
  private async mayWrite(what: 'training-checkpoint' | 'output'): Promise<void> {
    if (what === 'training-checkpoint') {
      await this.signals.poll(true);
    } else {
      const claim = await this.services.store.claimCommit(this.id, this.output, this.token);
      if (claim === 'cancelled') throw new JobCancelledError();
      if (claim !== 'ok') this.signals.markLost();
    }
    if (this.signals.lost) throw new OwnershipLostError();
    if (this.signals.cancelled) throw new JobCancelledError();
  }

  private async writeProgress(p: JobProgress, force: boolean): Promise<void> {
    this.latest = { ...p, updatedAt: now() };
    await this.signals.poll();
    if (!force && Date.now() - this.lastProgressWrite < PROGRESS_INTERVAL_MS) return;
    this.lastProgressWrite = Date.now();
    await this.services.store.setProgress(this.id, this.token, this.latest);
  }

  private async succeed(result: JobResult): Promise<AttemptResult> {
    const r = await this.end({ from: ['running'], to: 'succeeded', patch: { finishedAt: now(), result, progress: this.latest ? { ...this.latest, phase: 'done' } : undefined } });
    if (!r.ok) return this.yieldJob('could not record success: another attempt owns the job');
    this.log.info({ metrics: result.metrics.test ?? result.metrics.validation }, 'job succeeded');
    return result;
  }

  /** This attempt no longer owns the job: it leaves the record and BullMQ's entry to the owner. */
  private yieldJob(why: string): never {
    this.log.warn(why);
    throw new WaitingError();
  }

  private async settleError(err: unknown): Promise<AttemptResult> {
    if (err instanceof OwnershipLostError || this.signals.lost) return this.yieldJob('lost the job to another worker; stopped without writing');
    if (err instanceof ConflictError && err.code === 'checkpoint_exists') {
      // Another attempt of this very job won the rename (the loser of a lost-lock race): record it.
      const written = await readOwnOutput(this.layout, this.output, this.id);
      if (written) return this.succeed({ checkpoint: this.output, backend: written.backend ?? this.services.backend, metrics: written.metrics ?? {} });
    }
    if (err instanceof JobCancelledError || this.signals.cancelled) {
      const r = await this.end({ from: ['queued', 'running'], to: 'cancelled', patch: { finishedAt: now() } });
      if (!r.ok && r.refused === 'guard') return this.yieldJob('cancelled, but another attempt owns the job');
      this.log.info('job cancelled');
      throw new UnrecoverableError('cancelled');
    }
    if (err instanceof JobInterruptedError) return this.handBack(err);
    // A training checkpoint of the same position written meanwhile by a paused loser is an
    // accident of infrastructure, not the user's: retried like one.
    if (err instanceof GraftError && !err.code.startsWith('training checkpoint')) {
      // The spec can never succeed as written: say why and do not retry.
      const r = await this.end({ from: ['queued', 'running'], to: 'failed', patch: { finishedAt: now(), error: errorBody(err) } });
      if (!r.ok && r.refused === 'guard') return this.yieldJob('failed, but another attempt owns the job');
      this.log.warn({ code: err.code, message: err.message }, 'job failed');
      throw new UnrecoverableError(err.message);
    }
    const final = this.job.attemptsMade + 1 >= (this.job.opts.attempts ?? 1);
    this.log.error({ err, final }, 'job attempt failed');
    const error: JobError = { code: 'internal_error', message: `Training failed on the worker: ${(err as Error).message}`, param: null };
    const r = final
      ? await this.end({ from: ['queued', 'running'], to: 'failed', patch: { finishedAt: now(), error } })
      : await this.end({ from: ['running'], to: 'queued', patch: { error } });
    if (!r.ok && r.refused === 'guard') return this.yieldJob('attempt failed, but another attempt owns the job');
    throw err;
  }

  /**
   * The tenant already runs as many jobs as it may: back to the queue for TENANT_THROTTLE_DELAY_MS
   * without spending an attempt (BullMQ checks the token), keeping its priority, hence its place.
   */
  private async putBack(): Promise<never> {
    const delay = this.services.config.TENANT_THROTTLE_DELAY_MS;
    const moved = await this.services.queue.putBack(this.id, this.token, delay);
    this.log.debug({ tenant: this.tenant, delay, moved }, 'tenant at its concurrency limit; job put back');
    if (!moved) throw new WaitingError(); // the lock is gone: another worker owns the job now
    throw new DelayedError();
  }

  /** Graceful hand-over: the position is on the volume; back to the queue for another worker, no attempt spent. */
  private async handBack(err: JobInterruptedError): Promise<never> {
    const r = await this.end({
      from: ['running'],
      to: 'queued',
      message: `The worker is shutting down: training was checkpointed at epoch ${err.epoch}, batch ${err.batch}; another worker continues from there.`,
      data: { interrupted: { epoch: err.epoch, batch: err.batch } },
    });
    if (r.ok) await this.services.queue.handBack(this.id, this.token);
    this.log.info({ epoch: err.epoch, batch: err.batch, handedBack: r.ok }, 'job handed back after a checkpoint');
    throw new WaitingError();
  }
}

function errorBody(err: Error): JobError {
  return err instanceof GraftError ? { code: err.code, message: err.message, param: err.param, ...(err.details ? { details: err.details } : {}) } : { code: 'internal_error', message: err.message, param: null };
}
