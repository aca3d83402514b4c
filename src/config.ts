import { envSchema } from 'env-schema';
import { Type, type Static } from 'typebox';
import { ConfigError } from './errors';
import { BACKEND_PREFERENCES } from './spec/backends';

/**
 * The one configuration of graft, read from the environment (api, worker and the start script
 * alike), validated once at start-up against this schema. Names are part of the deployment
 * contract (README, docker-compose.yml): a test checks the compose file against them.
 */
export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 3000, description: 'HTTP port of the API.' }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Interface the API binds (0.0.0.0 in containers).' }),
  GRAFT_AUTH: Type.Enum(['required', 'off'], {
    default: 'required',
    description: 'required: every /v1 request needs Authorization: Bearer <API key>; off (only when HOST is a loopback address): every caller is the admin of the default tenant.',
  }),
  GRAFT_ADMIN_KEY: Type.Optional(Type.String({ minLength: 32, description: 'An admin API key of the default tenant, accepted without a Redis lookup (bootstrap; prefer GRAFT_ADMIN_KEY_FILE).' })),
  GRAFT_ADMIN_KEY_FILE: Type.Optional(Type.String({ minLength: 1, description: 'A file whose content is the bootstrap admin key (default DATA_DIR/.secrets/admin.key); when missing, the API creates it once (mode 0600) with a new key.' })),
  AUTH_CACHE_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 1000, description: 'How long an API process remembers a key lookup; revocations also reach every process at once over Redis pub/sub.' }),
  RATE_LIMIT_PER_MINUTE: Type.Integer({ minimum: 0, default: 1200, description: 'Requests one API key (or, without a key or with a refused one, one IP) may make to /v1 per minute across all API processes; more get 429 rate_limited. 0 disables.' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'Redis connection URL (redis:// or rediss://).' })),
  DATA_DIR: Type.String({ minLength: 1, default: './data', description: 'The volume: tenants/<tenant>/datasets/ and tenants/<tenant>/checkpoints/ live here.' }),
  GRAFT_BACKEND: Type.Enum([...BACKEND_PREFERENCES], {
    default: 'auto',
    description: 'TensorFlow.js backend for training; auto = tensorflow (tfjs-node) if it loads, else wasm, else cpu.',
  }),
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info', description: 'pino log level.' }),
  WORKER_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'Jobs one worker process trains at once (each in its own child process).' }),
  QUEUE_NAME: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$', default: 'graft', description: 'BullMQ queue name; also namespaces graft\'s own Redis keys.' }),
  JOB_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 20, default: 3, description: 'Attempts for infrastructure failures (crashes, lost workers); user errors are never retried.' }),
  JOB_RETENTION_SECONDS: Type.Integer({ minimum: 1, default: 7 * 24 * 3600, description: 'How long finished jobs stay listed; then their record, journal and DATA_DIR/jobs/<id>/ folder are removed.' }),
  RECONCILE_INTERVAL_SECONDS: Type.Integer({ minimum: 1, maximum: 86_400, default: 60, description: 'Every this often (and at start) a worker reconciles job records with the queue and removes expired jobs and abandoned staging folders.' }),
  TMP_GRACE_SECONDS: Type.Integer({ minimum: 1, default: 3600, description: 'A DATA_DIR/.tmp entry untouched for this long is a crashed write and is removed.' }),
  FEATURE_CACHE_MAX_MB: Type.Integer({ minimum: 0, default: 1024, description: 'Largest frozen-prefix feature cache a job may hold in memory (larger ones spill to disk); 0 disables caching.' }),
  FEATURE_CACHE_DISK_MAX_MB: Type.Integer({ minimum: 0, default: 16384, description: 'Largest feature cache a job may spill to DATA_DIR/jobs/<id>/ when it exceeds FEATURE_CACHE_MAX_MB; 0 = never spill (train without the cache instead).' }),
  SAMPLE_CACHE_SHARD_MB: Type.Integer({ minimum: 1, maximum: 4096, default: 64, description: 'Size of one shard file of the on-volume sample cache (decoded uint8 images under datasets/<name>/.cache/).' }),
  PREFETCH_BATCHES: Type.Integer({ minimum: 0, maximum: 64, default: 2, description: 'Batches read from the sample cache ahead of the one training (0 = read each batch when needed).' }),
  EPOCH_CHECKPOINTS_KEEP: Type.Integer({ minimum: 0, maximum: 100, default: 2, description: 'Training checkpoints kept per job (written every epoch and on shutdown) for resuming; 0 disables resuming.' }),
  SHUTDOWN_TIMEOUT_SECONDS: Type.Integer({ minimum: 1, maximum: 3600, default: 30, description: 'On SIGTERM a worker checkpoints its jobs at the next batch and exits within this time.' }),
  TRAINING_NICE: Type.Integer({ minimum: 0, maximum: 19, default: 10, description: 'Scheduling niceness of training processes (0 = normal, 19 = lowest): training yields the CPU to the API on a shared host.' }),
  WORKER_LOCK_SECONDS: Type.Integer({ minimum: 2, maximum: 3600, default: 60, description: 'Job lock of a worker process; a job whose worker died (host lost) is picked up by a live worker within about 1.5x this.' }),
  TENANT_MAX_ACTIVE_JOBS: Type.Integer({ minimum: 0, default: 100, description: 'Queued + running jobs one tenant may have (0 = unlimited); over it POST /v1/jobs gets 429 quota_exceeded. An admin may override it per tenant.' }),
  TENANT_MAX_CONCURRENT_JOBS: Type.Integer({ minimum: 0, default: 0, description: 'Jobs of one tenant that run at once across all workers (0 = unlimited); others wait queued. An admin may override it per tenant.' }),
  TENANT_THROTTLE_DELAY_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 1000, description: 'A job taken while its tenant is at TENANT_MAX_CONCURRENT_JOBS goes back to the queue for this long (no attempt spent).' }),
  RETRY_BACKOFF_MS: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 5000, description: 'First retry delay after an infrastructure failure (doubles each attempt).' }),
  UPLOAD_MAX_BYTES: Type.Integer({ minimum: 1024, default: 1024 ** 3, description: 'Largest uploaded file (dataset or checkpoint archive, or one checkpoint file); larger uploads get 413.' }),
  ARCHIVE_MAX_TOTAL_BYTES: Type.Integer({ minimum: 1024, default: 4 * 1024 ** 3, description: 'Largest total unpacked size of an uploaded archive (archive bombs).' }),
  ARCHIVE_MAX_ENTRIES: Type.Integer({ minimum: 1, default: 200_000, description: 'Most entries an uploaded archive may have.' }),
  ARCHIVE_MAX_ENTRY_BYTES: Type.Integer({ minimum: 1024, default: 1024 ** 3, description: 'Largest single unpacked file of an uploaded archive.' }),
  WORKER_METRICS_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 9465, description: 'Port of a worker\'s Prometheus /metrics listener (on HOST); 0 turns it off. A port already taken only logs a warning.' }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, default: 1024 * 1024, description: 'Largest JSON request body.' }),
  POOL_THREADS: Type.Integer({ minimum: 1, maximum: 64, default: 2, description: 'Threads of the API\'s untrusted-work pool (plans, submission checks, upload verification).' }),
  POOL_TASK_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 5000, description: 'Time limit of one untrusted-work task; past it the thread is killed and the request gets 422 time_limit_exceeded.' }),
  UPLOAD_CHECK_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 24 * 3_600_000, default: 600_000, description: 'Time limit of verifying one upload in the untrusted-work pool (decoding every image, loading the network); past it 422 time_limit_exceeded.' }),
  POOL_TASK_MAX_HEAP_MB: Type.Integer({ minimum: 32, maximum: 16_384, default: 512, description: 'Heap limit of an untrusted-work thread; past it the thread is killed and the request gets 422 memory_limit_exceeded.' }),
  POOL_MAX_QUEUE: Type.Integer({ minimum: 1, maximum: 100_000, default: 64, description: 'Untrusted-work tasks waiting for a thread; beyond it requests get 503 pool_saturated with Retry-After.' }),
  MODEL_MAX_PARAMS: Type.Integer({ minimum: 1, default: 100_000_000, description: 'Largest network (parameters) a job may train; larger ones get 422 model_too_large at submission.' }),
  MODEL_MAX_ACTIVATION_BYTES: Type.Integer({ minimum: 1024, default: 256 * 1024 ** 2, description: 'Largest activation memory of one sample through the network; larger ones get 422 model_too_large.' }),
  UPLOAD_MAX_REQUEST_BYTES: Type.Integer({ minimum: 1024, default: 2 * 1024 ** 3, description: 'Largest upload request (all its parts together); larger requests get 413.' }),
  UPLOAD_MAX_FILES: Type.Integer({ minimum: 1, maximum: 10_000, default: 64, description: 'Most file parts in one upload request (a checkpoint as model.json + shards); more get 413.' }),
  UPLOADS_MAX_CONCURRENT: Type.Integer({ minimum: 1, maximum: 1024, default: 4, description: 'Uploads one API process receives at once; more get 429 with Retry-After.' }),
  TENANT_MAX_STORAGE_BYTES: Type.Integer({ minimum: 0, default: 50 * 1024 ** 3, description: 'Default storage quota of a tenant (bytes of its datasets and checkpoints); an upload or job submission over it gets 403 quota_exceeded. 0 = unlimited. Admins override it per tenant (PUT /v1/tenants/{tenant}/quotas).' }),
  TENANT_UPLOADS_PER_MINUTE: Type.Integer({ minimum: 0, default: 30, description: 'Default uploads a tenant may start per minute, across all API processes (counted in Redis); more get 429 quota_exceeded with Retry-After. 0 = unlimited.' }),
  DISK_FREE_FLOOR_BYTES: Type.Integer({ minimum: 0, default: 1024 ** 3, description: 'Free space an upload must leave on the DATA_DIR volume; uploads that would go below get 507.' }),
  DATASET_MAX_BYTES: Type.Integer({ minimum: 1024, default: 2 * 1024 ** 3, description: 'Largest dataset file once inflated (an IDX file, as its header says and as it decompresses); larger get 422.' }),
  IMAGE_MAX_PIXELS: Type.Integer({ minimum: 1, default: 4096 * 4096, description: 'Most pixels (width x height) of one dataset image; larger images are refused (422) before they are decoded.' }),
  IMAGE_MAX_DIMENSION: Type.Integer({ minimum: 1, default: 8192, description: 'Largest width or height of one dataset image, in pixels.' }),
  JOB_SPEC_MAX_BYTES: Type.Integer({ minimum: 1024, default: 1024 * 1024, description: 'Largest job spec (POST /v1/jobs and /v1/plans body, topology included); larger ones get 413.' }),
  MODEL_MAX_LAYERS: Type.Integer({ minimum: 1, default: 1000, description: 'Most layers a user topology (model.topology) may have; more gets 422 model_too_large.' }),
  CONFUSION_MATRIX_MAX_CLASSES: Type.Integer({ minimum: 0, default: 100, description: 'Evaluation keeps a confusion matrix only up to this many classes (above it the matrix is null; per-class accuracy is still reported).' }),
  INFERENCE_PROCESSES: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'Inference child processes each API process forks (on the first prediction) to run POST /v1/checkpoints/{name}/predict; a checkpoint is always served by the same one.' }),
  INFERENCE_MAX_CONCURRENT: Type.Integer({ minimum: 1, maximum: 100_000, default: 256, description: 'Prediction requests one API process has in flight at once; more get 429 with Retry-After.' }),
  INFERENCE_BATCH_WINDOW_MS: Type.Number({
    minimum: 0,
    maximum: 1000,
    default: 0,
    description: 'Micro-batching: an inference process waits at most this long after a request for more requests to the same model, then runs them as one batch. 0 (the default): no wait; what arrives while a batch runs still forms the next batch.',
  }),
  INFERENCE_MAX_BATCH: Type.Integer({ minimum: 1, maximum: 4096, default: 32, description: 'Micro-batching: most instances run through a model in one call; a full batch runs at once.' }),
  INFERENCE_MODEL_CACHE: Type.Integer({ minimum: 1, maximum: 1000, default: 8, description: 'Loaded models each inference process keeps (least recently used evicted first), keyed by checkpoint content hash.' }),
  INFERENCE_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 30_000, description: 'Longest one prediction request may take in an inference process (model load included); past it 503 inference_timeout.' }),
  PREDICT_MAX_INSTANCES: Type.Integer({ minimum: 1, maximum: 100_000, default: 256, description: 'Most instances (arrays or image files) in one prediction request; more get 413.' }),
  PREDICT_MAX_BYTES: Type.Integer({ minimum: 1024, default: 16 * 1024 ** 2, description: 'Largest prediction request body (JSON or multipart images); larger get 413.' }),
  SSE_MAX_STREAMS: Type.Integer({ minimum: 1, default: 1000, description: 'Most open event streams (Server-Sent Events) per API process; more get 429 with Retry-After.' }),
  PRESSURE_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 0, default: 1000, description: 'The API answers 503 with Retry-After while its event-loop delay is above this; 0 disables the check.' }),
  PRESSURE_MAX_HEAP_USED_MB: Type.Integer({ minimum: 0, default: 1024, description: 'The API answers 503 with Retry-After while its V8 heap in use is above this; 0 disables the check.' }),
  PRESSURE_MAX_RSS_MB: Type.Integer({ minimum: 0, default: 1536, description: 'The API answers 503 with Retry-After while its resident memory is above this; 0 disables the check.' }),
  PRESSURE_RETRY_AFTER_SECONDS: Type.Integer({ minimum: 1, maximum: 3600, default: 5, description: 'Retry-After of a 503 (overloaded) or 429 (too many streams).' }),
  REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 0, default: 600_000, description: 'Longest time to receive one whole request, uploads included (a slow client is cut off); 0 disables.' }),
  CONNECTION_TIMEOUT_MS: Type.Integer({ minimum: 0, default: 120_000, description: 'An idle connection (no bytes either way) is closed after this; event streams send a keep-alive every 10 s. 0 disables.' }),
  KEEP_ALIVE_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 72_000, description: 'How long an idle keep-alive connection is kept open between requests (above common load-balancer idle timeouts).' }),
});

export type Config = Static<typeof ConfigSchema>;

/** Variables that configure graft, in the order the README documents them. */
export const CONFIG_KEYS = Object.keys(ConfigSchema.properties) as (keyof Config)[];

/**
 * Validates `env` (default: process.env) and returns a frozen config with defaults applied.
 * Throws ConfigError whose message names every bad variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv | Record<string, string | undefined> = process.env): Readonly<Config> {
  const data: Record<string, string> = {};
  for (const key of CONFIG_KEYS) {
    const v = env[key];
    if (v !== undefined && v !== '') data[key] = v;
  }
  let cfg: Config;
  try {
    cfg = envSchema<Config>({ schema: ConfigSchema as object, data, env: false, dotenv: false });
  } catch (err) {
    const ajvErrors = (err as { errors?: { instancePath: string; message?: string; params?: Record<string, unknown> }[] }).errors;
    if (ajvErrors?.length) {
      const lines = ajvErrors.map((e) => {
        const key = e.instancePath.replace(/^\//, '');
        const allowed = e.params?.allowedValues ? ` (allowed: ${(e.params.allowedValues as unknown[]).join(', ')})` : '';
        return `${key} ${e.message ?? 'is invalid'}${allowed}; got ${JSON.stringify(data[key])}`;
      });
      throw new ConfigError(`Invalid configuration: ${[...new Set(lines)].join('; ')}`);
    }
    throw new ConfigError(`Invalid configuration: ${(err as Error).message}`);
  }
  // An open API is only acceptable where nobody else can reach it.
  if (cfg.GRAFT_AUTH === 'off' && !isLoopbackHost(cfg.HOST)) {
    throw new ConfigError(`Invalid configuration: GRAFT_AUTH=off is allowed only when HOST is a loopback address (127.0.0.0/8, ::1, localhost); got HOST=${JSON.stringify(cfg.HOST)}. Set GRAFT_AUTH=required or bind HOST to 127.0.0.1.`);
  }
  if (cfg.GRAFT_ADMIN_KEY !== undefined && cfg.GRAFT_ADMIN_KEY_FILE !== undefined) {
    throw new ConfigError('Invalid configuration: set GRAFT_ADMIN_KEY or GRAFT_ADMIN_KEY_FILE, not both.');
  }
  return Object.freeze({ ...cfg });
}

/** 127.0.0.0/8, ::1 (and its IPv4-mapped forms) or localhost: addresses only this machine reaches. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.replace(/^::ffff:/, '');
  return /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(v4) && v4.split('.').every((o) => Number(o) <= 255);
}

/** Every variable at its default: the one source of the defaults that library code falls back to. */
export const DEFAULT_CONFIG: Readonly<Config> = loadConfig({});

/** For process entry points: the config, or the message naming the bad variable and exit 1. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  try {
    return loadConfig(env);
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
}
