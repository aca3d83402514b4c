import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UnrecoverableError, type SandboxedJob } from 'bullmq';
import pino, { type Logger } from 'pino';
import { loadConfig, type Config } from '../src/config';
import { GraftError } from '../src/errors';
import type { TrainJobData } from '../src/jobs/job-queue';
import { JobStore } from '../src/jobs/job-store';
import type { JobProgress, JobResult } from '../src/jobs/types';
import { createRedis } from '../src/redis';
import { validateSpec } from '../src/spec/validate';
import { DataLayout } from '../src/storage/layout';
import { initBackend, type BackendName } from './engine/backend';
import { runJob } from './engine/run-job';
import { JobCancelledError, JobInterruptedError } from './engine/trainer';
import { SHUTDOWN_REASON } from './shutdown';

/**
 * The sandboxed processor: runs in a child process that BullMQ forks (and reuses across jobs),
 * so a crash or a runaway allocation in TensorFlow never takes the worker down with it. It owns
 * the job record's story: running → succeeded | failed | cancelled, or back to queued for a retry.
 */
const PROGRESS_INTERVAL_MS = 1000;
const CANCEL_POLL_MS = 1000;

interface ChildServices {
  config: Readonly<Config>;
  store: JobStore;
  layout: DataLayout;
  logger: Logger;
  backend: BackendName;
}

let services: Promise<ChildServices> | null = null;

function getServices(): Promise<ChildServices> {
  services ??= (async () => {
    const config = loadConfig();
    const logger = pino({ level: config.LOG_LEVEL, name: 'graft-trainer' });
    const redis = createRedis(config.REDIS_URL, { forWorker: true });
    const layout = new DataLayout(config.DATA_DIR);
    await layout.ensure();
    const backend = await initBackend(config.GRAFT_BACKEND, (msg) => logger.info(msg));
    return { config, store: new JobStore(redis, config.QUEUE_NAME, config.JOB_RETENTION_SECONDS), layout, logger, backend };
  })();
  return services;
}

const now = () => new Date().toISOString();

export default async function processTrainJob(job: SandboxedJob<TrainJobData>, _token?: string, signal?: AbortSignal): Promise<JobResult | { skipped: string }> {
  const { config, store, layout, logger, backend } = await getServices();
  const id = job.data.jobId;
  const log = logger.child({ jobId: id, attempt: job.attemptsMade + 1 });
  const record = await store.get(id);
  if (!record) throw new UnrecoverableError(`job record ${id} no longer exists`);
  if (record.status !== 'queued' && record.status !== 'running') {
    log.info({ status: record.status }, 'job already finished; nothing to do');
    return { skipped: record.status };
  }

  let spec;
  try {
    spec = validateSpec(record.spec);
  } catch (err) {
    await fail(store, id, err as GraftError);
    await store.releaseOutput(record.spec.output?.checkpoint ?? '', id);
    throw new UnrecoverableError((err as Error).message);
  }

  if (await store.isCancelRequested(id)) {
    await store.transition(id, ['queued', 'running'], 'cancelled', { finishedAt: now() });
    await store.releaseOutput(spec.output.checkpoint, id);
    return { skipped: 'cancelled' };
  }

  await store.incrementAttempts(id);
  // The BullMQ worker is this child's parent: name it, so users can tell which process ran the job.
  await store.transition(id, ['queued', 'running'], 'running', { startedAt: record.startedAt ?? now(), error: null, worker: `${os.hostname()}:${process.ppid}` });

  // A previous attempt may have died between writing the checkpoint and recording success.
  const written = await readOwnManifest(layout.checkpointDir(spec.output.checkpoint), id);
  if (written) {
    const result: JobResult = { checkpoint: spec.output.checkpoint, backend: written.backend ?? backend, metrics: written.metrics ?? {} };
    await store.transition(id, ['running'], 'succeeded', { finishedAt: now(), result });
    await store.releaseOutput(spec.output.checkpoint, id);
    log.info('checkpoint was already written by an earlier attempt; recorded success');
    return result;
  }

  // Cancellation reaches us two ways: BullMQ aborts `signal` when the worker holding the job gets
  // the pub/sub request, and a flag in Redis is polled in case that message was missed.
  const stop = new AbortController();
  const interrupt = new AbortController();
  signal?.addEventListener('abort', () => (signal.reason === SHUTDOWN_REASON ? interrupt.abort() : stop.abort()), { once: true });
  let lastCancelCheck = Date.now();
  const pollCancel = async () => {
    if (Date.now() - lastCancelCheck < CANCEL_POLL_MS) return;
    lastCancelCheck = Date.now();
    if (await store.isCancelRequested(id)) stop.abort();
  };

  let lastWrite = 0;
  let latest: JobProgress | null = null;
  const writeProgress = async (p: JobProgress, force: boolean) => {
    latest = { ...p, updatedAt: now() };
    await pollCancel();
    if (!force && Date.now() - lastWrite < PROGRESS_INTERVAL_MS) return;
    lastWrite = Date.now();
    await store.setProgress(id, latest);
  };

  try {
    log.info({ type: spec.type, output: spec.output.checkpoint, backend }, 'training started');
    const outcome = await runJob(spec, {
      jobId: id,
      layout,
      backend,
      featureCacheMaxBytes: config.FEATURE_CACHE_MAX_MB * 1024 * 1024,
      signal: stop.signal,
      interrupt: interrupt.signal,
      checkpointKeep: config.EPOCH_CHECKPOINTS_KEEP,
      onProgress: (p) => writeProgress(p, p.phase !== 'training' || p.batch === p.batches),
      onEpoch: async (m) => {
        log.info({ ...m }, 'epoch finished');
        const val = m.valLoss === null ? '' : `, val_loss ${m.valLoss.toFixed(4)}${m.valAccuracy === null ? '' : `, val_accuracy ${m.valAccuracy.toFixed(4)}`}`;
        await store.events.append(id, { type: 'metrics', message: `Epoch ${m.epoch}: loss ${m.loss.toFixed(4)}${m.accuracy === null ? '' : `, accuracy ${m.accuracy.toFixed(4)}`}${val}.`, data: { ...m } });
      },
      onEvent: (message, data) => store.events.append(id, { message, data }).then(() => undefined),
      onWarning: (message, data) => store.events.append(id, { level: 'warning', message, data }).then(() => undefined),
      log: (msg, data) => log.info(data ?? {}, msg),
    });
    await store.transition(id, ['running'], 'succeeded', { finishedAt: now(), result: outcome.result, progress: latest ? { ...(latest as JobProgress), phase: 'done' } : null });
    await store.releaseOutput(spec.output.checkpoint, id);
    log.info({ metrics: outcome.result.metrics.test ?? outcome.result.metrics.validation }, 'job succeeded');
    return outcome.result;
  } catch (err) {
    if (err instanceof JobCancelledError || stop.signal.aborted) {
      await store.transition(id, ['queued', 'running'], 'cancelled', { finishedAt: now() });
      await store.releaseOutput(spec.output.checkpoint, id);
      log.info('job cancelled');
      throw new UnrecoverableError('cancelled');
    }
    if (err instanceof JobInterruptedError) {
      // Graceful hand-over: the position is on the volume; back to the queue for another worker.
      await store.transition(id, ['running'], 'queued', {});
      await store.events.append(id, { level: 'warning', message: `The worker is shutting down: training was checkpointed at epoch ${err.epoch}, batch ${err.batch}; another worker continues from there.`, data: { interrupted: { epoch: err.epoch, batch: err.batch } } });
      log.info({ epoch: err.epoch, batch: err.batch }, 'job handed back after a checkpoint');
      throw err;
    }
    if (err instanceof GraftError) {
      // The spec can never succeed as written: say why and do not retry.
      await fail(store, id, err);
      await store.releaseOutput(spec.output.checkpoint, id);
      log.warn({ code: err.code, message: err.message }, 'job failed');
      throw new UnrecoverableError(err.message);
    }
    const final = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    log.error({ err, final }, 'job attempt failed');
    const error = { code: 'internal_error', message: `Training failed on the worker: ${(err as Error).message}`, param: null };
    if (final) {
      await store.transition(id, ['queued', 'running'], 'failed', { finishedAt: now(), error });
      await store.releaseOutput(spec.output.checkpoint, id);
    } else {
      await store.transition(id, ['running'], 'queued', { error });
    }
    throw err;
  }
}

async function fail(store: JobStore, id: string, err: GraftError | Error): Promise<void> {
  const error = err instanceof GraftError ? { code: err.code, message: err.message, param: err.param, ...(err.details ? { details: err.details } : {}) } : { code: 'internal_error', message: err.message, param: null };
  await store.transition(id, ['queued', 'running'], 'failed', { finishedAt: now(), error });
}

interface OwnManifest {
  jobId?: string;
  backend?: string;
  metrics?: JobResult['metrics'];
}

async function readOwnManifest(dir: string, jobId: string): Promise<OwnManifest | null> {
  try {
    const manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')) as OwnManifest;
    return manifest.jobId === jobId ? manifest : null;
  } catch {
    return null;
  }
}
