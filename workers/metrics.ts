import http from 'node:http';
import type { Job as BullJob, Worker } from 'bullmq';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TrainJobData } from '../src/jobs/job-queue';
import type { JobStore } from '../src/jobs/job-store';
import { TERMINAL_STATUSES, type Job } from '../src/jobs/types';

/**
 * One worker process's Prometheus metrics, served on its own small HTTP listener
 * (WORKER_METRICS_PORT). Why a listener per worker and not counters aggregated in Redis: it is
 * Prometheus's own model (each process exposes what it did, `up` tells whether it is alive and
 * `sum()` aggregates), it needs no extra Redis writes on the training path, and a dead worker's
 * numbers vanish with it instead of lingering as stale totals. Compose scrapes every replica
 * through DNS service discovery (see prometheus/prometheus.yml).
 *
 * Outcomes are counted in this (parent) process from BullMQ's `completed`/`failed` events and the
 * job record, because the sandboxed child that trains is replaced at will and holds no state.
 */
export interface WorkerMetricsOptions {
  worker: Worker<TrainJobData>;
  store: JobStore;
  logger: Logger;
  /** Added to every metric, so a scrape says which worker it came from. */
  labels?: Record<string, string>;
}

const HELP_OUTCOME = 'Jobs this worker finished, by job type, final status and training backend (none when it never trained).';

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly active = new Set<string>();
  private readonly finished: Counter<'type' | 'status' | 'backend'>;
  private readonly jobDuration: Histogram<'type' | 'status'>;
  private readonly epochDuration: Histogram<'type'>;
  private server: http.Server | null = null;

  constructor(private readonly opts: WorkerMetricsOptions) {
    const registers = [this.registry];
    if (opts.labels) this.registry.setDefaultLabels(opts.labels);
    collectDefaultMetrics({ register: this.registry, prefix: 'graft_worker_' });
    this.finished = new Counter({ name: 'graft_jobs_finished_total', help: HELP_OUTCOME, labelNames: ['type', 'status', 'backend'], registers });
    this.jobDuration = new Histogram({
      name: 'graft_job_duration_seconds',
      help: 'From the first start of a job to its end (retries included), by type and final status.',
      labelNames: ['type', 'status'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600],
      registers,
    });
    this.epochDuration = new Histogram({
      name: 'graft_epoch_duration_seconds',
      help: 'Wall-clock time of one training epoch (validation included), observed when its job ends.',
      labelNames: ['type'],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    });
    const active = this.active;
    const { worker, store } = opts;
    new Gauge({
      name: 'graft_worker_active_jobs',
      help: 'Jobs this worker is training now.',
      registers,
      collect() {
        this.set(active.size);
      },
    });
    new Gauge({
      name: 'graft_worker_up',
      help: '1 while this worker takes jobs from the queue (0 once it is closing or paused).',
      registers,
      collect() {
        this.set(worker.isRunning() && !worker.closing && !worker.isPaused() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'graft_worker_concurrency',
      help: 'Jobs this worker may train at once.',
      registers,
      collect() {
        this.set(worker.concurrency);
      },
    });
    new Gauge({
      name: 'graft_training_samples_per_second',
      help: 'Training throughput of the jobs this worker is running now (sum of their latest progress reports).',
      registers,
      async collect() {
        const jobs = await Promise.all([...active].map((id) => store.get(id).catch(() => null)));
        this.set(jobs.reduce((sum, j) => sum + (j?.status === 'running' ? (j.progress?.samplesPerSecond ?? 0) : 0), 0));
      },
    });

    worker.on('active', (job) => this.active.add(job.data.jobId));
    worker.on('completed', (job) => this.settle(job));
    worker.on('failed', (job) => {
      if (job) this.settle(job);
    });
  }

  /** A BullMQ attempt ended: count the job if this attempt is the one that finished it. */
  private settle(job: BullJob<TrainJobData>): void {
    this.active.delete(job.data.jobId);
    void this.record(job).catch((err) => this.opts.logger.warn({ err, jobId: job.data.jobId }, 'could not record job metrics'));
  }

  private async record(job: BullJob<TrainJobData>): Promise<void> {
    const record = await this.opts.store.get(job.data.jobId);
    if (!record || !TERMINAL_STATUSES.includes(record.status) || !record.finishedAt) return; // retried or handed back: not over yet
    // A duplicate delivery of an already finished job ends at once without changing the record:
    // only the attempt that wrote the end counts it.
    const attemptStart = job.processedOn ?? 0;
    if (Date.parse(record.finishedAt) < attemptStart - 1000) return;
    this.countFinished(record);
    if (record.startedAt) this.jobDuration.observe({ type: record.type, status: record.status }, (Date.parse(record.finishedAt) - Date.parse(record.startedAt)) / 1000);
    const events = await this.opts.store.events.list(record.id, { limit: 10_000 }, record.createdAt);
    for (const e of events) {
      const seconds = e.type === 'metrics' ? e.data?.seconds : undefined;
      if (typeof seconds === 'number' && Date.parse(e.at) >= attemptStart - 1000) this.epochDuration.observe({ type: record.type }, seconds);
    }
  }

  private countFinished(record: Job): void {
    this.finished.inc({ type: record.type, status: record.status, backend: record.result?.backend ?? 'none' });
  }

  /** Serves GET /metrics on `port` (0 = pick a free one); resolves with the bound port. */
  listen(port: number, host: string): Promise<number> {
    const server = http.createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'route_not_found', message: 'Only GET /metrics is served here.', param: null } }));
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${err.message}\n`),
      );
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve((server.address() as { port: number }).port);
      });
    });
  }

  close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return Promise.resolve();
    // A scraper's keep-alive connection must not hold a stopping worker open.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    return closed;
  }
}
