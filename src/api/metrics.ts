import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** BullMQ job states reported as queue depth (the ones a person watching a queue cares about). */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'failed', 'completed'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

/** What a bounded pool (plans, upload validation) reports when scraped. */
export interface PoolUsage {
  /** Tasks running now. */
  busy: number;
  /** Tasks waiting for a thread. */
  queued: number;
  /** Threads the pool may run at once. */
  capacity: number;
}

/**
 * The seam through which a pool reports its saturation: call `register` once with a function the
 * registry calls on every scrape (pull, so an idle pool costs nothing).
 */
export interface PoolGauges {
  register(pool: string, usage: () => PoolUsage): void;
}

/** What this API process's predictions look like on a scrape (its inference processes summed). */
export interface InferenceUsage {
  /** Prediction requests being answered now. */
  inFlight: number;
  /** Inference processes running. */
  processes: number;
  /** Since each process started: model.predict calls, instances predicted, checkpoints loaded, models dropped. */
  batches: number;
  instances: number;
  loads: number;
  evictions: number;
  /** Models loaded now. */
  models: number;
}

/** How long one scrape's reading of the inference processes is reused by the other series of that scrape. */
const INFERENCE_READ_MS = 250;

export interface ApiMetricsOptions {
  /** Queue depth by BullMQ state; read on each scrape (queue depth is a cluster fact, so the API reports it once, not every worker). */
  queueCounts?: () => Promise<Partial<Record<QueueState, number>>>;
  /** Off in tests that build many apps in one process (the default metrics are per process anyway). */
  defaultMetrics?: boolean;
}

/**
 * The API's Prometheus metrics, on a private registry (not prom-client's global one) so two apps
 * in one process (tests) never collide. Served at GET /metrics by `metricsPlugin`.
 */
export class ApiMetrics implements PoolGauges {
  readonly registry = new Registry();
  private readonly pools = new Map<string, () => PoolUsage>();
  private inference: (() => Promise<InferenceUsage>) | null = null;
  private inferenceRead: { at: number; usage: Promise<InferenceUsage | null> } | null = null;
  readonly requestDuration: Histogram<'method' | 'route' | 'status_code'>;
  private readonly requestLabels = new Map<string, Record<'method' | 'route' | 'status_code', string>>();
  readonly inFlight: Gauge;
  readonly sseStreams: Gauge;
  readonly sseStreamsTotal: Counter;

  constructor(opts: ApiMetricsOptions = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'graft_api_' });
    this.requestDuration = new Histogram({
      name: 'graft_http_request_duration_seconds',
      help: 'HTTP request duration by route template and status (an SSE stream counts from open to close).',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.inFlight = new Gauge({ name: 'graft_http_requests_in_flight', help: 'HTTP requests being served now (open SSE streams included).', registers });
    this.sseStreams = new Gauge({ name: 'graft_sse_streams_open', help: 'Server-Sent Events streams open now.', registers });
    this.sseStreamsTotal = new Counter({ name: 'graft_sse_streams_total', help: 'Server-Sent Events streams opened.', registers });
    const pools = this.pools;
    new Gauge({
      name: 'graft_pool_tasks',
      help: 'Tasks in a bounded pool by state (busy = running, queued = waiting for a thread).',
      labelNames: ['pool', 'state'],
      registers,
      collect() {
        this.reset();
        for (const [pool, usage] of pools) {
          const u = usage();
          this.set({ pool, state: 'busy' }, u.busy);
          this.set({ pool, state: 'queued' }, u.queued);
        }
      },
    });
    new Gauge({
      name: 'graft_pool_saturation_ratio',
      help: 'busy / capacity of a bounded pool; 1 means every thread is taken and new work queues.',
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset();
        for (const [pool, usage] of pools) {
          const u = usage();
          this.set({ pool }, u.capacity > 0 ? u.busy / u.capacity : 0);
        }
      },
    });
    // Predictions: pulled from the inference processes on a scrape (one IPC round trip, shared by
    // the series below); counters restart with a process, which Prometheus reads as a reset.
    const inferenceSeries: [string, string, keyof InferenceUsage, 'gauge' | 'counter'][] = [
      ['graft_inference_predictions_in_flight', 'Prediction requests this API process is answering now.', 'inFlight', 'gauge'],
      ['graft_inference_processes', 'Inference processes this API process runs.', 'processes', 'gauge'],
      ['graft_inference_models_loaded', 'Models held in the inference processes\' caches.', 'models', 'gauge'],
      ['graft_inference_batches_total', 'model.predict calls (a batch of micro-batched requests); instances_total / batches_total is the mean batch size.', 'batches', 'counter'],
      ['graft_inference_instances_total', 'Instances predicted.', 'instances', 'counter'],
      ['graft_inference_model_loads_total', 'Checkpoints loaded from the volume (model cache misses).', 'loads', 'counter'],
      ['graft_inference_model_evictions_total', 'Models dropped from a cache (least recently used, or the checkpoint was deleted).', 'evictions', 'counter'],
    ];
    const readInference = () => this.readInference();
    for (const [name, help, field, kind] of inferenceSeries) {
      const collect = async function (this: Gauge | Counter) {
        const usage = await readInference();
        this.reset();
        if (usage) (this as Gauge).inc(usage[field]);
      };
      if (kind === 'gauge') new Gauge({ name, help, registers, collect });
      else new Counter({ name, help, registers, collect });
    }
    const queueCounts = opts.queueCounts;
    if (queueCounts) {
      new Gauge({
        name: 'graft_queue_jobs',
        help: 'BullMQ jobs in the training queue by state.',
        labelNames: ['state'],
        registers,
        async collect() {
          const counts = await queueCounts();
          for (const state of QUEUE_STATES) this.set({ state }, counts[state] ?? 0);
        },
      });
    }
  }

  /** One request's duration, by route template and status. */
  observeRequest(method: string, route: string, statusCode: number, seconds: number): void {
    const key = `${method} ${statusCode} ${route}`;
    let labels = this.requestLabels.get(key);
    if (!labels) {
      labels = { method, route, status_code: String(statusCode) };
      // Route templates, methods and statuses are few; the bound is only a backstop.
      if (this.requestLabels.size < MAX_LABEL_SETS) this.requestLabels.set(key, labels);
    }
    this.requestDuration.observe(labels, seconds);
  }

  register(pool: string, usage: () => PoolUsage): void {
    this.pools.set(pool, usage);
  }

  /** Where the inference series read from (set once the prediction service exists). */
  observeInference(usage: () => Promise<InferenceUsage>): void {
    this.inference = usage;
  }

  private readInference(): Promise<InferenceUsage | null> {
    const now = Date.now();
    if (!this.inference) return Promise.resolve(null);
    if (!this.inferenceRead || now - this.inferenceRead.at > INFERENCE_READ_MS) {
      this.inferenceRead = { at: now, usage: this.inference().catch(() => null) };
    }
    return this.inferenceRead.usage;
  }

  /** The Prometheus text exposition of everything above. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** Label sets of graft_http_request_duration_seconds kept ready (see observeRequest). */
const MAX_LABEL_SETS = 1000;

/** Paths the dashboard and the metrics endpoint themselves use; timing them would only add noise. */
const UNTIMED = new Set(['/metrics']);

/**
 * Times every request from onRequest to the socket's `close` (not onResponse: SSE replies are
 * hijacked and never reach it), by route template so ids do not explode the label set. Installed
 * on the root instance (not as an encapsulated plugin) so the hook sees every route. The metrics
 * are looked up per request, so an app built only to generate the OpenAPI document needs none.
 */
export function installMetrics(app: FastifyInstance, getMetrics: () => ApiMetrics): void {
  {
    app.addHook('onRequest', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      if (UNTIMED.has(route)) return;
      const metrics = getMetrics();
      const started = performance.now();
      const sse = route.endsWith('/events') && String(request.headers.accept ?? '').includes('text/event-stream');
      metrics.inFlight.inc();
      if (sse) {
        metrics.sseStreams.inc();
        metrics.sseStreamsTotal.inc();
      }
      // 'close' comes once per response; observe() with a label object built once per
      // (method, route, status) instead of a prom-client timer's per-request closures and copies.
      reply.raw.on('close', () => {
        metrics.inFlight.dec();
        if (sse) metrics.sseStreams.dec();
        metrics.observeRequest(request.method, route, reply.raw.statusCode, (performance.now() - started) / 1000);
      });
    });
    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
      const { contentType, body } = await getMetrics().exposition();
      return reply.type(contentType).send(body);
    });
  }
}
