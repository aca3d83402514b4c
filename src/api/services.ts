import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config';
import { GraftError, NotFoundError } from '../errors';
import { JobQueue } from '../jobs/job-queue';
import { JobService, type Planner } from '../jobs/job-service';
import { JobStore } from '../jobs/job-store';
import { UploadReservations } from '../jobs/upload-reservations';
import { JobLimits } from '../tenants/job-limits';
import { createRedis } from '../redis';
import { EventHub } from './event-hub';
import type { Redis } from 'ioredis';
import type { AuditLog } from '../auth/audit';
import { resolveAdminKey } from '../auth/admin-key';
import { KeyAuthenticator } from '../auth/key-authenticator';
import { KeyStore } from '../auth/key-store';
import { OpenAuthenticator, type Authenticator } from '../auth/principal';
import { RedisAuditLog } from '../auth/redis-audit-log';
import { JobKeys } from '../jobs/keys';
import type { DatasetInfo, PreflightStorage, SourceInfo, TenantStorage } from '../spec/preflight';
import { CheckpointCatalog } from '../storage/checkpoints';
import { DatasetCatalog, datasetLimits } from '../storage/datasets';
import { DataLayout } from '../storage/layout';
import { Publisher } from '../storage/publish';
import { UploadService, uploadLimits, type UploadValidator } from '../storage/uploads';
import { StorageQuota } from '../tenants/storage-quota';
import { StorageHolds } from '../tenants/storage-holds';
import { StorageUsage } from '../tenants/storage-usage';
import { TenantQuotas } from '../tenants/quotas';
import { UploadRate } from '../tenants/upload-rate';
import { FileMemo } from './file-memo';
import { ApiMetrics, QUEUE_STATES } from './metrics';
import { PlanCache } from './plan-cache';
import { UntrustedPool } from './untrusted-pool';
import { EvictionBus } from '../inference/eviction-bus';
import { InferenceClient } from '../inference/inference-client';
import { PredictionService } from '../inference/prediction-service';

/** How long an Idempotency-Key remembers its job (clients retry within minutes, not days). */
const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;
/** Beyond UPLOAD_CHECK_TIMEOUT_MS, for the rename and the catalog write after the check. */
const STORAGE_HOLD_MARGIN_MS = 60_000;

/** What the routes need; tests and server.ts build it with createServices. */
export interface AppDeps {
  jobs: JobService;
  /** The process's one reader of job-event streams, shared by every SSE client. */
  events: EventHub;
  /** Redis key of a job's event stream. */
  eventsKey(jobId: string): string;
  uploads: UploadService;
  checkpoints: CheckpointCatalog;
  datasets: DatasetCatalog;
  health: { redis(): Promise<void>; volume(): Promise<void> };
  /** Who is calling (auth/principal.ts): API keys, or everyone the default admin when GRAFT_AUTH=off. */
  auth: Authenticator;
  /** Who created, cancelled, deleted or published what (record), read by GET /v1/audit (list). */
  audit: AuditLog;
  /** API keys (POST/GET/DELETE /v1/keys). */
  keys: KeyStore;
  /** Where @fastify/rate-limit counts requests: graft's shared connection, under the queue's namespace. */
  rateLimitStore: { redis: Redis; nameSpace: string };
  /** Prometheus metrics served at GET /metrics; pools report their saturation through `metrics.register`. */
  metrics: ApiMetrics;
  /** Predictions with stored checkpoints, run in inference child processes (src/inference). */
  predictions: PredictionService;
  /** Per-tenant quotas: config defaults overridden by an admin (src/tenants/quotas.ts). */
  tenantQuotas: TenantQuotas;
  /** The storage side of tenant quotas: storage bytes and uploads per minute. */
  storageQuota: StorageQuota;
  /** Copies datasets and checkpoints into the public namespace. */
  publisher: Publisher;
}

export interface Services {
  deps: AppDeps;
  layout: DataLayout;
  store: JobStore;
  queue: JobQueue;
  pool: UntrustedPool;
  /** Idempotent. */
  close(): Promise<void>;
}

export interface ServicesOptions {
  /** Start the untrusted-work pool's threads at once and keep them (the server does; tests need not). */
  warmPool?: boolean;
}

export async function createServices(config: Readonly<Config>, logger: Logger, opts: ServicesOptions = {}): Promise<Services> {
  const layout = new DataLayout(config.DATA_DIR);
  await layout.ensure();
  const redis = createRedis(config.REDIS_URL);
  const store = new JobStore(redis, config.QUEUE_NAME, config.JOB_RETENTION_SECONDS);
  // Jobs from before tenants join `default` (once per queue; workers do it too). In the background:
  // start-up does not wait for Redis, /readyz reports it.
  store.adoptUntenanted().catch((err: Error) => logger.warn({ err }, 'could not adopt jobs from before tenants; a worker will'));
  const queue = new JobQueue({ queueName: config.QUEUE_NAME, connection: createRedis(config.REDIS_URL, { forWorker: true }), attempts: config.JOB_ATTEMPTS, backoffMs: config.RETRY_BACKOFF_MS });
  const checkpoints = new CheckpointCatalog(layout);
  const datasets = new DatasetCatalog(layout, datasetLimits(config));
  const tenantQuotas = new TenantQuotas(redis, store.keys, {
    maxStorageBytes: config.TENANT_MAX_STORAGE_BYTES,
    uploadsPerMinute: config.TENANT_UPLOADS_PER_MINUTE,
    // The job quotas' defaults come with the job side of issue 11 (0 = unlimited until then).
    maxActiveJobs: 0,
    maxConcurrentJobs: 0,
  });
  // A grant outlives a crashed API process by the longest an upload may take to be verified and installed.
  const storageHolds = new StorageHolds(redis, store.keys, config.UPLOAD_CHECK_TIMEOUT_MS + STORAGE_HOLD_MARGIN_MS);
  const storageQuota = new StorageQuota(tenantQuotas, new StorageUsage(layout), new UploadRate(redis, store.keys), storageHolds);
  const storage = preflightStorage(layout, checkpoints, datasets, storageQuota);
  const pool = new UntrustedPool({
    threads: config.POOL_THREADS,
    taskTimeoutMs: config.POOL_TASK_TIMEOUT_MS,
    maxHeapMb: config.POOL_TASK_MAX_HEAP_MB,
    maxQueue: config.POOL_MAX_QUEUE,
    logger,
    keepWarm: opts.warmPool,
  });
  if (opts.warmPool) await pool.warmup();
  const metrics = new ApiMetrics({ queueCounts: () => queue.queue.getJobCounts(...QUEUE_STATES) });
  metrics.register('untrusted', () => {
    const s = pool.stats();
    return { busy: s.running, queued: s.queued, capacity: config.POOL_THREADS };
  });
  const events = new EventHub({
    connect: () => createRedis(config.REDIS_URL, { connectionName: eventHubConnectionName(config.QUEUE_NAME) }),
    control: redis,
    logger: logger.child({ component: 'event-hub' }),
  });
  const keyNames = new JobKeys(config.QUEUE_NAME);
  const audit = new RedisAuditLog(redis, keyNames, config.JOB_RETENTION_SECONDS);
  const jobs = new JobService({
    store,
    queue,
    storage,
    logger,
    preflightLimits: { maxLayers: config.MODEL_MAX_LAYERS },
    queueName: config.QUEUE_NAME,
    idempotency: { redis, idempotencyTtlSeconds: IDEMPOTENCY_TTL_SECONDS },
    layout,
    planner: poolPlanner(pool, new PlanCache(layout), config),
    limits: new JobLimits(redis, store.keys, { maxActiveJobs: config.TENANT_MAX_ACTIVE_JOBS, maxConcurrentJobs: config.TENANT_MAX_CONCURRENT_JOBS }),
    quotaRetryAfterSeconds: config.PRESSURE_RETRY_AFTER_SECONDS,
    audit,
  });

  const keys = new KeyStore(redis, keyNames);
  const auth = await authenticatorFor(config, keys, keyNames, logger);
  const inference = new InferenceClient({
    processes: config.INFERENCE_PROCESSES,
    maxConcurrent: config.INFERENCE_MAX_CONCURRENT,
    timeoutMs: config.INFERENCE_TIMEOUT_MS,
    settings: {
      backend: config.GRAFT_BACKEND,
      batchWindowMs: config.INFERENCE_BATCH_WINDOW_MS,
      maxBatch: config.INFERENCE_MAX_BATCH,
      modelCache: config.INFERENCE_MODEL_CACHE,
      imageLimits: datasetLimits(config),
    },
    logger: logger.child({ component: 'inference' }),
  });
  const evictions = new EvictionBus({
    publisher: redis,
    connect: () => createRedis(config.REDIS_URL),
    channel: new JobKeys(config.QUEUE_NAME).checkpointDeletedChannel,
    dataDir: config.DATA_DIR,
    onEvict: (dir) => inference.evict(dir),
    logger,
  });
  const predictions = new PredictionService({ checkpoints, client: inference, bus: evictions });
  metrics.observeInference(async () => {
    const children = await predictions.stats();
    const sum = (field: 'batches' | 'instances' | 'loads' | 'evictions' | 'models') => children.reduce((n, c) => n + c[field], 0);
    return { inFlight: predictions.busy, processes: children.length, batches: sum('batches'), instances: sum('instances'), loads: sum('loads'), evictions: sum('evictions'), models: sum('models') };
  });
  metrics.register('inference', () => ({ busy: inference.busy, queued: 0, capacity: config.INFERENCE_MAX_CONCURRENT }));

  let closing: Promise<void> | null = null;
  return {
    layout,
    store,
    queue,
    pool,
    deps: {
      jobs,
      events,
      eventsKey: (jobId) => store.events.key(jobId),
      uploads: new UploadService({
        layout,
        limits: uploadLimits(config),
        validator: poolValidator(pool, config.UPLOAD_CHECK_TIMEOUT_MS),
        datasets,
        checkpoints,
        reservations: new UploadReservations(store, config.TMP_GRACE_SECONDS),
        quota: storageQuota,
      }),
      checkpoints,
      datasets,
      metrics,
      auth,
      audit,
      keys,
      rateLimitStore: { redis, nameSpace: keyNames.rateLimitPrefix },
      predictions,
      tenantQuotas,
      storageQuota,
      publisher: new Publisher(layout, checkpoints, datasets),
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
        await events.close();
        await auth.close?.();
        await Promise.all([queue.close(), pool.close(), inference.close(), evictions.close()]);
        const conn = queue.queue.opts.connection as { quit?: () => Promise<unknown> } | undefined;
        await Promise.allSettled([redis.quit(), conn?.quit?.()]);
      })();
      return closing;
    },
  };
}

/** API keys (GRAFT_AUTH=required), listening for revocations before the first request; or everyone the default admin. */
async function authenticatorFor(config: Readonly<Config>, store: KeyStore, keyNames: JobKeys, logger: Logger): Promise<Authenticator> {
  if (config.GRAFT_AUTH === 'off') return new OpenAuthenticator();
  const admin = await resolveAdminKey(config, logger);
  // Only where the key came from, never the key.
  logger.info({ source: admin?.source, file: admin?.file }, 'bootstrap admin key loaded');
  const auth = new KeyAuthenticator({
    store,
    subscriber: createRedis(config.REDIS_URL, { connectionName: `graft-${config.QUEUE_NAME}-revocations` }),
    revocationChannel: keyNames.apiKeyRevocations,
    cacheMs: config.AUTH_CACHE_MS,
    adminKeyHash: admin?.hash ?? null,
  });
  await auth.start();
  return auth;
}

/** Name of the event hub's Redis connection (CLIENT LIST shows one per API process). */
export function eventHubConnectionName(queueName: string): string {
  return `graft-${queueName}-events`;
}

const orNull = async <T>(p: Promise<T>): Promise<T | null> => {
  try {
    return await p;
  } catch (err) {
    if (err instanceof NotFoundError) return null;
    throw err;
  }
};

/**
 * What a submission's checks read from the volume, per tenant, remembered per file identity
 * (file-memo.ts): a burst of submissions against one checkpoint and dataset reads each once.
 * Memo keys are the resolved folders, so two tenants' `mnist` never share an entry. A reference
 * to another tenant's object resolves to nothing, exactly like a missing name.
 */
export function preflightStorage(layout: DataLayout, checkpoints: CheckpointCatalog, datasets: DatasetCatalog, quota?: StorageQuota): TenantStorage {
  const datasetMemo = new FileMemo<DatasetInfo | null>();
  // The names in a tenant's checkpoints/, re-read only when the folder changes (its mtime moves
  // whenever a checkpoint is renamed in or out), and the folder stat'ed at most every
  // FILE_RECHECK_MS: not a failing stat (and its exception) per submission for the usual case of
  // a new output name. A checkpoint written within that window by another process is still
  // caught: the output name is reserved atomically, and the attempt that would write over it
  // fails with checkpoint_exists.
  const namesMemo = new FileMemo<Set<string>>();
  const checkpointMemo = new FileMemo<SourceInfo | null>();
  const views = new Map<string, PreflightStorage>();
  const forTenant = (tenant: string): PreflightStorage => {
    const own = layout.forTenant(tenant);
    const checkpointNames = () =>
      namesMemo.get(own.checkpointsDir, own.checkpointsDir, async () => {
        const entries = await fs.readdir(own.checkpointsDir, { withFileTypes: true }).catch(() => []);
        return new Set(entries.filter((e) => e.isDirectory()).map((e) => e.name));
      });
    return {
      dataset: async (ref) => {
        const target = own.resolveRef(ref);
        if (!target) return null;
        const dir = target.layout.datasetDir(target.name);
        return datasetMemo.get(dir, dir, async () => {
          const d = await orNull(datasets.forTenant(target.layout.tenant).describe(target.name));
          return d && { inputShape: d.inputShape, numClasses: d.numClasses };
        });
      },
      checkpoint: async (ref) => {
        const target = own.resolveRef(ref);
        if (!target) return null;
        const dir = target.layout.checkpointDir(target.name);
        return checkpointMemo.get(dir, path.join(dir, 'model.json'), async () => {
          const c = await orNull(checkpoints.forTenant(target.layout.tenant).describe(target.name));
          return c && { layers: c.layers.filter((l) => l.className !== 'InputLayer').map((l) => l.name), weights: c.layers.flatMap((l) => l.weights) };
        });
      },
      checkpointExists: async (name) => (await checkpointNames()).has(name),
      storageQuota: async () => {
        try {
          await quota?.ensureRoom(tenant, 0, { recent: true });
          return null;
        } catch (err) {
          if (err instanceof GraftError) return err;
          throw err;
        }
      },
    };
  };
  return {
    forTenant(tenant) {
      let view = views.get(tenant);
      if (!view) {
        view = forTenant(tenant);
        views.set(tenant, view);
      }
      return view;
    },
  };
}

/**
 * The dry-run planner: the engine's own network builder (workers/engine/plan.ts), run in the
 * untrusted-work pool with shape-only weights and the model budget, so a plan fails exactly where
 * the job would and a hostile network costs a pool thread, not the API. Outcomes are cached per
 * recipe (plan-cache.ts).
 */
export function poolPlanner(pool: UntrustedPool, cache: PlanCache, config: Pick<Config, 'DATA_DIR' | 'MODEL_MAX_PARAMS' | 'MODEL_MAX_ACTIVATION_BYTES'>): Planner {
  const budget = { maxParams: config.MODEL_MAX_PARAMS, maxActivationBytes: config.MODEL_MAX_ACTIVATION_BYTES };
  const dataDir = path.resolve(config.DATA_DIR);
  return (spec, dataset, tenant) => cache.getOrPlan(spec, dataset, tenant, () => pool.run('plan', { dataDir, tenant, spec, dataset, budget }));
}

/** Upload verification (decoding every image, loading the network) runs in the pool too. */
function poolValidator(pool: UntrustedPool, timeoutMs: number): UploadValidator {
  const uploadCheck = { timeoutMs, limitName: 'UPLOAD_CHECK_TIMEOUT_MS' };
  return {
    // Decoding every image of a real dataset takes minutes, not the seconds a plan gets.
    dataset: async (stagingRoot, name, limits) => {
      await pool.run('validateDataset', { stagingRoot, name, limits }, uploadCheck);
    },
    checkpoint: async (dataDir, name, stagedDir, uploadId, tenant) => {
      await pool.run('importCheckpoint', { dataDir, tenant, name, stagedDir, uploadId }, uploadCheck);
    },
  };
}
