import os from 'node:os';
import path from 'node:path';
import { Worker } from 'bullmq';
import pino from 'pino';
import { loadConfigOrExit } from '../src/config';
import { JobQueue, type TrainJobData } from '../src/jobs/job-queue';
import { JobStore } from '../src/jobs/job-store';
import { Reconciler } from '../src/jobs/reconciler';
import { RetentionSweeper } from '../src/jobs/retention';
import { createRedis } from '../src/redis';
import { DataLayout } from '../src/storage/layout';
import { WorkerMetrics } from './metrics';
import { LOCK_LOST_REASON, SHUTDOWN_REASON } from './shutdown';

/**
 * A worker process: takes jobs from the queue and trains each in a sandboxed child process
 * (BullMQ forks processor.js; child processes, not worker threads, because tfjs-node cannot load
 * in a second thread). Lock renewal happens here, in the parent, so a long batch in the child
 * never makes the job look stalled. It also keeps the books: at start and every
 * RECONCILE_INTERVAL_SECONDS it reconciles records with BullMQ and sweeps what retention removes.
 */

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = pino({ level: config.LOG_LEVEL, name: 'graft-worker' });
  const redis = createRedis(config.REDIS_URL, { forWorker: true });
  const layout = new DataLayout(config.DATA_DIR);
  await layout.ensure();
  const store = new JobStore(redis, config.QUEUE_NAME, config.JOB_RETENTION_SECONDS);
  const queue = new JobQueue({ queueName: config.QUEUE_NAME, connection: redis, attempts: config.JOB_ATTEMPTS, backoffMs: config.RETRY_BACKOFF_MS });
  const reconciler = new Reconciler({ store, queue, layout, logger, maxAttempts: config.JOB_ATTEMPTS, graceSeconds: config.RECONCILE_INTERVAL_SECONDS });
  // Records from before tenants join the default tenant before anything lists or counts them.
  const adopted = await store.adoptUntenanted();
  if (adopted) logger.info({ adopted }, 'jobs from before tenants now belong to the default tenant');
  const sweeper = new RetentionSweeper({ store, layout, logger, tmpGraceSeconds: config.TMP_GRACE_SECONDS });

  const worker = new Worker<TrainJobData>(config.QUEUE_NAME, path.join(__dirname, 'processor.js'), {
    connection: createRedis(config.REDIS_URL, { forWorker: true }),
    concurrency: config.WORKER_CONCURRENCY,
    useWorkerThreads: false,
    // The lock is renewed by this process (not the training child), so a long batch never expires
    // it; only a dead or paused worker does, and then a live one takes the job after at most ~1.5 locks.
    lockDuration: config.WORKER_LOCK_SECONDS * 1000,
    stalledInterval: (config.WORKER_LOCK_SECONDS * 1000) / 2,
    maxStalledCount: config.JOB_ATTEMPTS,
  });

  const metrics = new WorkerMetrics({ worker, store, logger, labels: { worker: `${os.hostname()}:${process.pid}` } });
  if (config.WORKER_METRICS_PORT > 0) {
    metrics.listen(config.WORKER_METRICS_PORT, config.HOST).then(
      (port) => logger.info({ port }, 'metrics at /metrics'),
      (err: Error) => logger.warn({ err: err.message }, 'no metrics listener (another worker on this host has the port?)'),
    );
  }

  // Work that must finish before the process exits (recording a failure, a maintenance pass).
  const pending = new Set<Promise<unknown>>();
  const track = (what: string, p: Promise<unknown>) => {
    const tracked = p.catch((err) => logger.error({ err }, `could not ${what}`)).finally(() => pending.delete(tracked));
    pending.add(tracked);
  };

  // Cancel requests are published by the API; only the worker holding the job can abort it.
  const subscriber = redis.duplicate();
  await subscriber.subscribe(store.cancelChannel);
  subscriber.on('message', (_channel, jobId: string) => {
    if (worker.cancelJob(jobId, 'cancelled by user')) logger.info({ jobId }, 'cancelling the running job');
  });

  // A lock that could not be renewed may already belong to another worker: stop the child at its
  // next batch (it also notices by itself, polling its lock, even when this process was paused).
  worker.on('lockRenewalFailed', (jobIds) => {
    for (const jobId of jobIds) if (worker.cancelJob(jobId, LOCK_LOST_REASON)) logger.warn({ jobId }, 'lost the lock of a job; stopping its training');
  });

  // A child that dies (kill -9, out of memory) cannot write its own epitaph: once BullMQ has
  // failed the job for good, the reconciler records why (guarded by BullMQ's failed state).
  worker.on('failed', (job, err) => {
    if (!job) return;
    const final = job.attemptsMade >= (job.opts.attempts ?? 1) || err.name === 'UnrecoverableError' || /stalled/i.test(err.message);
    if (final) track('record a failed job', reconciler.reconcileOne(job.data.jobId));
  });
  worker.on('error', (err) => logger.error({ err }, 'worker error'));
  worker.on('ready', () => logger.info({ queue: config.QUEUE_NAME, concurrency: config.WORKER_CONCURRENCY }, 'worker ready'));

  let maintaining: Promise<unknown> | null = null;
  const maintain = () => {
    if (maintaining) return;
    maintaining = (async () => {
      await reconciler.run();
      await sweeper.sweep();
    })().finally(() => (maintaining = null));
    track('reconcile and sweep', maintaining);
  };
  maintain();
  const timer = setInterval(maintain, config.RECONCILE_INTERVAL_SECONDS * 1000);

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    clearInterval(timer);
    logger.info({ signal }, 'shutting down: finishing or handing back active jobs');
    // Running jobs checkpoint at their next batch and go back to the queue for another worker.
    worker.cancelAllJobs(SHUTDOWN_REASON);
    const forced = setTimeout(() => {
      logger.warn('close timed out; forcing (active jobs return to the queue as stalled)');
      void worker.close(true).finally(() => process.exit(0));
    }, config.SHUTDOWN_TIMEOUT_SECONDS * 1000);
    try {
      await worker.close();
      await Promise.allSettled([...pending]);
    } finally {
      clearTimeout(forced);
      await Promise.allSettled([subscriber.quit(), redis.quit(), metrics.close()]);
      process.exit(0);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

void main();
