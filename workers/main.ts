import os from 'node:os';
import path from 'node:path';
import { Worker } from 'bullmq';
import pino from 'pino';
import { loadConfigOrExit } from '../src/config';
import type { TrainJobData } from '../src/jobs/job-queue';
import { JobStore } from '../src/jobs/job-store';
import { TERMINAL_STATUSES } from '../src/jobs/types';
import { createRedis } from '../src/redis';
import { WorkerMetrics } from './metrics';
import { SHUTDOWN_REASON } from './shutdown';

/**
 * A worker process: takes jobs from the queue and trains each in a sandboxed child process
 * (BullMQ forks processor.js; child processes, not worker threads, because tfjs-node cannot load
 * in a second thread). Lock renewal happens here, in the parent, so a long batch in the child
 * never makes the job look stalled.
 */

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = pino({ level: config.LOG_LEVEL, name: 'graft-worker' });
  const redis = createRedis(config.REDIS_URL, { forWorker: true });
  const store = new JobStore(redis, config.QUEUE_NAME, config.JOB_RETENTION_SECONDS);

  const worker = new Worker<TrainJobData>(config.QUEUE_NAME, path.join(__dirname, 'processor.js'), {
    connection: createRedis(config.REDIS_URL, { forWorker: true }),
    concurrency: config.WORKER_CONCURRENCY,
    useWorkerThreads: false,
    // The lock is renewed by this process (not the training child), so a long batch never expires
    // it; only a dead worker does, and then a live one takes the job after at most ~1.5 locks.
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

  // Cancel requests are published by the API; only the worker holding the job can abort it.
  const subscriber = redis.duplicate();
  await subscriber.subscribe(store.cancelChannel);
  subscriber.on('message', (_channel, jobId: string) => {
    if (worker.cancelJob(jobId, 'cancelled by user')) logger.info({ jobId }, 'cancelling the running job');
  });

  // A child that dies (kill -9, out of memory) cannot write its own epitaph: on the last attempt,
  // record the failure here so the job never stays "running" forever.
  worker.on('failed', (job, err) => {
    if (!job) return;
    const final = job.attemptsMade >= (job.opts.attempts ?? 1) || err.name === 'UnrecoverableError';
    if (!final) return;
    void (async () => {
      const record = await store.get(job.data.jobId);
      if (!record || TERMINAL_STATUSES.includes(record.status)) return;
      await store.transition(job.data.jobId, ['queued', 'running'], 'failed', {
        finishedAt: new Date().toISOString(),
        error: { code: 'worker_crashed', message: `The training process died ${job.attemptsMade} time(s) (${err.message}); the job was given up. Try a smaller batchSize or model.`, param: null },
      });
      await store.releaseOutput(record.spec.output.checkpoint, record.id);
    })().catch((e) => logger.error({ err: e }, 'could not record a failed job'));
  });
  worker.on('error', (err) => logger.error({ err }, 'worker error'));
  worker.on('ready', () => logger.info({ queue: config.QUEUE_NAME, concurrency: config.WORKER_CONCURRENCY }, 'worker ready'));

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down: finishing or handing back active jobs');
    // Running jobs checkpoint at their next batch and go back to the queue for another worker.
    worker.cancelAllJobs(SHUTDOWN_REASON);
    const timer = setTimeout(() => {
      logger.warn('close timed out; forcing (active jobs return to the queue as stalled)');
      void worker.close(true).finally(() => process.exit(0));
    }, config.SHUTDOWN_TIMEOUT_SECONDS * 1000);
    try {
      await worker.close();
    } finally {
      clearTimeout(timer);
      await Promise.allSettled([subscriber.quit(), redis.quit(), metrics.close()]);
      process.exit(0);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

void main();
