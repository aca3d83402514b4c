import type { SandboxedJob } from 'bullmq';
import pino from 'pino';
import { loadConfig } from '../src/config';
import { JobQueue, type TrainJobData } from '../src/jobs/job-queue';
import { JobStore } from '../src/jobs/job-store';
import { createRedis } from '../src/redis';
import { DataLayout } from '../src/storage/layout';
import { initBackend } from './engine/backend';
import { TrainAttempt, type AttemptResult, type ChildServices } from './train-attempt';

/**
 * The sandboxed processor: runs in a child process that BullMQ forks (and reuses across jobs),
 * so a crash or a runaway allocation in TensorFlow never takes the worker down with it. Each job
 * is one TrainAttempt (train-attempt.ts): it owns the record's story while it holds the lock.
 */
let services: Promise<ChildServices> | null = null;

function getServices(): Promise<ChildServices> {
  services ??= (async () => {
    const config = loadConfig();
    const logger = pino({ level: config.LOG_LEVEL, name: 'graft-trainer' });
    const redis = createRedis(config.REDIS_URL, { forWorker: true });
    const layout = new DataLayout(config.DATA_DIR);
    await layout.ensure();
    const backend = await initBackend(config.GRAFT_BACKEND, (msg) => logger.info(msg));
    const queue = new JobQueue({ queueName: config.QUEUE_NAME, connection: redis, attempts: config.JOB_ATTEMPTS, backoffMs: config.RETRY_BACKOFF_MS });
    return { config, store: new JobStore(redis, config.QUEUE_NAME, config.JOB_RETENTION_SECONDS), queue, layout, logger, backend };
  })();
  return services;
}

export default async function processTrainJob(job: SandboxedJob<TrainJobData>, token?: string, signal?: AbortSignal): Promise<AttemptResult> {
  return new TrainAttempt(await getServices(), job, token ?? '', signal).run();
}
