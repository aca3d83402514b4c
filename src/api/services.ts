import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config';
import { NotFoundError } from '../errors';
import { JobQueue } from '../jobs/job-queue';
import { JobService, type Planner } from '../jobs/job-service';
import { JobStore } from '../jobs/job-store';
import type { Redis } from 'ioredis';
import type * as PlanModule from '../../workers/engine/plan';
import { createRedis } from '../redis';
import type { PreflightStorage } from '../spec/preflight';
import { CheckpointCatalog } from '../storage/checkpoints';
import { DatasetCatalog } from '../storage/datasets';
import { DataLayout } from '../storage/layout';
import { UploadService, validateDatasetFolder, type UploadValidator } from '../storage/uploads';
import { ApiMetrics, QUEUE_STATES } from './metrics';

/** How long an Idempotency-Key remembers its job (clients retry within minutes, not days). */
const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;

/** What the routes need; tests and server.ts build it with createServices. */
export interface AppDeps {
  jobs: JobService;
  /** A fresh connection for one blocking reader (an SSE stream); the caller quits it. */
  blockingRedis(): Redis;
  /** Redis key of a job's event stream. */
  eventsKey(jobId: string): string;
  uploads: UploadService;
  datasetDir(name: string): string;
  checkpointDir(name: string): string;
  tmpDir: string;
  checkpoints: CheckpointCatalog;
  datasets: DatasetCatalog;
  health: { redis(): Promise<void>; volume(): Promise<void> };
  /** Prometheus metrics served at GET /metrics; pools report their saturation through `metrics.register`. */
  metrics: ApiMetrics;
}

export interface Services {
  deps: AppDeps;
  layout: DataLayout;
  store: JobStore;
  queue: JobQueue;
  /** Idempotent. */
  close(): Promise<void>;
}

export async function createServices(config: Readonly<Config>, logger: Logger): Promise<Services> {
  const layout = new DataLayout(config.DATA_DIR);
  await layout.ensure();
  const redis = createRedis(config.REDIS_URL);
  const store = new JobStore(redis, config.QUEUE_NAME, config.JOB_RETENTION_SECONDS);
  const queue = new JobQueue({ queueName: config.QUEUE_NAME, connection: createRedis(config.REDIS_URL, { forWorker: true }), attempts: config.JOB_ATTEMPTS, backoffMs: config.RETRY_BACKOFF_MS });
  const checkpoints = new CheckpointCatalog(layout);
  const datasets = new DatasetCatalog(layout);
  const storage = preflightStorage(checkpoints, datasets);
  const jobs = new JobService({ store, queue, storage, logger, queueName: config.QUEUE_NAME, idempotency: { redis, idempotencyTtlSeconds: IDEMPOTENCY_TTL_SECONDS }, layout, planner: makePlanner(checkpoints) });

  let closing: Promise<void> | null = null;
  return {
    layout,
    store,
    queue,
    deps: {
      jobs,
      blockingRedis: () => redis.duplicate(),
      eventsKey: (jobId) => store.events.key(jobId),
      uploads: new UploadService(layout, {
        maxTotalBytes: config.ARCHIVE_MAX_TOTAL_BYTES,
        maxEntries: config.ARCHIVE_MAX_ENTRIES,
        maxEntryBytes: config.ARCHIVE_MAX_ENTRY_BYTES,
      }, inProcessValidator()),
      datasetDir: (name) => layout.datasetDir(name, '/name'),
      checkpointDir: (name) => layout.checkpointDir(name, '/name'),
      tmpDir: layout.tmpDir,
      checkpoints,
      datasets,
      metrics: new ApiMetrics({ queueCounts: () => queue.queue.getJobCounts(...QUEUE_STATES) }),
      health: {
        redis: async () => {
          const pong = await redis.ping();
          if (pong !== 'PONG') throw new Error(`unexpected PING reply ${pong}`);
        },
        volume: async () => {
          const probe = path.join(layout.tmpDir, `.ready-${process.pid}`);
          await fs.writeFile(probe, 'ok');
          await fs.rm(probe, { force: true });
        },
      },
    },
    close() {
      closing ??= (async () => {
        await queue.close();
        const conn = queue.queue.opts.connection as { quit?: () => Promise<unknown> } | undefined;
        await Promise.allSettled([redis.quit(), conn?.quit?.()]);
      })();
      return closing;
    },
  };
}

const orNull = async <T>(p: Promise<T>): Promise<T | null> => {
  try {
    return await p;
  } catch (err) {
    if (err instanceof NotFoundError) return null;
    throw err;
  }
};

export function preflightStorage(checkpoints: CheckpointCatalog, datasets: DatasetCatalog): PreflightStorage {
  return {
    async dataset(name) {
      const d = await orNull(datasets.describe(name));
      return d && { inputShape: d.inputShape, numClasses: d.numClasses };
    },
    async checkpoint(name) {
      const c = await orNull(checkpoints.describe(name));
      return c && { layers: c.layers.filter((l) => l.className !== 'InputLayer').map((l) => l.name), weights: c.layers.flatMap((l) => l.weights) };
    },
    checkpointExists: (name) => checkpoints.exists(name),
  };
}

/**
 * The dry-run planner: the engine's own network builder on the pure-JS cpu backend, loaded on
 * first use so an API that never plans never loads TensorFlow.js. Same code as the worker, so
 * a plan fails exactly where the job would.
 */
export function makePlanner(checkpoints: CheckpointCatalog): Planner {
  return async (spec, dataset) => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { planJob } = require('../../workers/engine/plan') as typeof PlanModule;
    return planJob(spec, {
      datasetShape: dataset.inputShape as [number, number, number] | null,
      numClasses: dataset.numClasses,
      loadSource: async (name: string) => {
        const source = await checkpoints.structure(name);
        return { modelTopology: source.modelTopology, weights: new Map(source.weights.map((w) => [w.name, { shape: w.shape, dtype: 'float32' }])) };
      },
    });
  };
}

/** TEMPORARY (replaced by the untrusted-work pool): validates uploads on the API's own thread. */
function inProcessValidator(): UploadValidator {
  return {
    dataset: (root, name) => validateDatasetFolder(new DataLayout(root), name),
    async checkpoint(dataDir, name, dir, uploadId) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      await (require('../../workers/engine/cpu') as typeof import('../../workers/engine/cpu')).ensureCpuBackend();
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      await (require('../../workers/engine/checkpoint-io') as typeof import('../../workers/engine/checkpoint-io')).importCheckpoint(new DataLayout(dataDir), name, dir, uploadId);
    },
  };
}
