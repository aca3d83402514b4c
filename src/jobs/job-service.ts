import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { BaseLogger, Logger } from 'pino';
import { ConflictError, GraftError, NotFoundError } from '../errors';
import { DEFAULT_TENANT } from '../auth/principal';
import { preflight, type DatasetInfo, type PreflightLimits, type TenantStorage } from '../spec/preflight';
import { refersTo, jobTenant } from '../tenants/refs';
import type { JobPlan } from '../spec/plan';
import { withDefaults, type JobSpec } from '../spec/schema';
import type { JobQueue } from './job-queue';
import type { JobStore, ListOptions } from './job-store';
import type { JobEvent } from './job-events';
import type { DataLayout } from '../storage/layout';
import { listTrainingCheckpoints, type TrainingCheckpointInfo } from '../storage/training-checkpoints';
import { TERMINAL_STATUSES, type Job } from './types';

/** Submission and lookup of jobs: the API's side of the job lifecycle. */
export class JobService {
  constructor(
    private readonly deps: {
      store: JobStore;
      queue: JobQueue;
      /** The volume as each tenant sees it (names in a spec are relative to the submitting tenant). */
      storage: TenantStorage;
      logger: Logger;
      /** Budgets on what a spec may ask (MODEL_MAX_LAYERS); defaults when absent. */
      preflightLimits?: PreflightLimits;
      queueName: string;
      idempotency: { redis: Redis; idempotencyTtlSeconds: number };
      layout: DataLayout;
      planner: Planner;
    },
  ) {}

  /**
   * Every check a submission gets, and the network the worker would build, without enqueueing
   * anything. `errors` lists everything found, with the codes a job would fail with.
   */
  async plan(input: JobSpec, tenant: string = DEFAULT_TENANT): Promise<PlanReport> {
    const spec = withDefaults(input);
    const report = await preflight(spec, this.deps.storage.forTenant(tenant), this.deps.preflightLimits);
    const errors = [...report.errors];
    let plan: JobPlan | null = null;
    // The network can be built once its ingredients exist and the spec is well-formed.
    const buildable = !errors.some((e) => e.statusCode === 400 || ['dataset_not_found', 'checkpoint_not_found', 'restore_matches_nothing', 'invalid_layer_name', 'model_too_large'].includes(e.code));
    if (buildable) {
      try {
        plan = await this.deps.planner(spec, report.dataset!, tenant);
      } catch (err) {
        if (!(err instanceof GraftError)) throw err;
        if (!errors.some((e) => e.code === err.code && e.param === err.param)) errors.push(err);
      }
    }
    return { valid: errors.length === 0, errors: sortErrors(errors).map((e) => ({ code: e.code, message: e.message, param: e.param })), warnings: report.warnings, plan };
  }

  /**
   * Checks, then reserves the output name and records the job in one step, then enqueues it. If
   * enqueueing fails the record and the reservation are rolled back, so a 5xx never leaves a
   * phantom job behind.
   */
  async submit(input: JobSpec, id: string = randomUUID(), log: Pick<BaseLogger, 'info'> = this.deps.logger, tenant: string = DEFAULT_TENANT): Promise<Job> {
    const spec = withDefaults(input);
    const report = await preflight(spec, this.deps.storage.forTenant(tenant), this.deps.preflightLimits);
    if (report.errors.length > 0) throw pickFirst(report.errors);
    // What only building the network reveals (shape mismatches, a head that does not fit the
    // classes, an unbuildable topology) is refused now rather than after minutes in the queue.
    await this.deps.planner(spec, report.dataset!, tenant);

    const { store, queue } = this.deps;
    const job = await store.create(id, spec);
    if (!job) {
      throw new ConflictError('checkpoint_reserved', `Another queued or running job already writes the checkpoint "${spec.output.checkpoint}".`, '/output/checkpoint');
    }
    try {
      await queue.enqueue(id);
    } catch (err) {
      await store.discard(id, spec.output.checkpoint).catch(() => undefined);
      throw err;
    }
    for (const warning of report.warnings) await store.events.append(id, { level: 'warning', message: warning });
    // `log` is the request's logger when there is one, so the line carries the request id.
    log.info({ jobId: id, type: spec.type, output: spec.output.checkpoint }, 'job queued');
    return job;
  }

  /**
   * Submission with an Idempotency-Key: the first request with a key creates the job; a retry
   * with the same key and body gets that job back (`replayed`), another body under the same key
   * is a conflict. The key is claimed before submitting, so two racing retries create one job.
   */
  async submitIdempotent(input: JobSpec, key: string, log?: Pick<BaseLogger, 'info'>, tenant: string = DEFAULT_TENANT): Promise<{ job: Job; replayed: boolean }> {
    const { redis, idempotencyTtlSeconds } = this.deps.idempotency;
    const redisKey = this.deps.store.keys.idempotency(sha256(key));
    const bodyHash = sha256(stableStringify(input));
    const id = randomUUID();
    const claimed = await redis.set(redisKey, JSON.stringify({ jobId: id, bodyHash }), 'EX', idempotencyTtlSeconds, 'NX');
    if (claimed !== 'OK') {
      const previous = JSON.parse((await redis.get(redisKey)) ?? '{}') as { jobId?: string; bodyHash?: string };
      if (previous.bodyHash !== bodyHash) {
        throw new ConflictError('idempotency_key_reused', 'This Idempotency-Key was already used with a different request body; use a new key for a new job.', null);
      }
      const job = await this.deps.store.get(previous.jobId ?? '');
      if (!job) throw new ConflictError('idempotency_key_in_flight', 'A request with this Idempotency-Key is still being processed (or failed validation); retry in a moment.', null);
      return { job, replayed: true };
    }
    try {
      return { job: await this.submit(input, id, log, tenant), replayed: false };
    } catch (err) {
      // A rejected submission must not pin the key: the client fixes the body and retries.
      await redis.del(redisKey);
      throw err;
    }
  }

  /**
   * Cancels a job, as state (cancel.lua), whatever the queue says. Queued: cancelled at once (a
   * worker that just took it ends it at start). Running: flagged and the worker holding it told;
   * it stops within a batch and the status becomes `cancelled` then. Cancelling a cancelled job
   * is harmless; a finished one, or one already writing its checkpoint, is a conflict.
   */
  async cancel(id: string): Promise<{ job: Job; pending: boolean }> {
    const { store, queue } = this.deps;
    const job = await this.get(id);
    if (job.status === 'cancelled') return { job, pending: false };
    const outcome = await store.cancel(id, job.spec.output.checkpoint);
    if (outcome === 'missing') return { job: await this.get(id), pending: false };
    if (outcome === 'finishing') {
      throw new ConflictError('job_finishing', 'The job is already writing its output checkpoint; it can no longer be cancelled.', null);
    }
    if (outcome === 'succeeded' || outcome === 'failed') {
      throw new ConflictError('job_finished', `The job already ${outcome}; only queued or running jobs can be cancelled.`, null);
    }
    // The record is the truth; the queue entry is only tidied (a worker holding it skips it).
    if (outcome === 'cancelled') await queue.remove(id);
    const now = await this.get(id);
    return { job: now, pending: !TERMINAL_STATUSES.includes(now.status) };
  }

  /**
   * Ids of queued or running jobs that read (or will write) the dataset or checkpoint `name` of
   * `tenant` (a public object's users are every tenant's jobs that read `public/<name>`).
   */
  async usersOf(kind: 'dataset' | 'checkpoint', name: string, tenant: string = DEFAULT_TENANT): Promise<string[]> {
    const jobs = await this.deps.store.active();
    return jobs
      .filter((j) => {
        const own = jobTenant(j);
        if (kind === 'dataset') return refersTo(j.spec.dataset.name, own, tenant, name);
        return refersTo(j.spec.source?.checkpoint, own, tenant, name) || (own === tenant && j.spec.output.checkpoint === name);
      })
      .map((j) => j.id);
  }

  async trainingCheckpoints(id: string): Promise<TrainingCheckpointInfo[]> {
    await this.get(id);
    return listTrainingCheckpoints(this.deps.layout, id);
  }

  async events(id: string, opts: { after?: string; limit: number }): Promise<JobEvent[]> {
    await this.get(id);
    return this.deps.store.events.list(id, opts);
  }

  async get(id: string): Promise<Job> {
    const job = await this.deps.store.get(id);
    if (!job) throw new NotFoundError('job_not_found', `There is no job "${id}" (finished jobs are kept for a limited time).`, null);
    return job;
  }

  list(opts: ListOptions) {
    return this.deps.store.list(opts);
  }
}

/** Bad requests first (400), then missing things (422), then conflicts (409). */
function sortErrors(errors: GraftError[]): GraftError[] {
  const rank = (e: GraftError) => (e.statusCode === 400 ? 0 : e.statusCode === 422 ? 1 : 2);
  return [...errors].sort((a, b) => rank(a) - rank(b));
}

function pickFirst(errors: GraftError[]): GraftError {
  return sortErrors(errors)[0];
}

export interface PlanReport {
  valid: boolean;
  errors: { code: string; message: string; param: string | null }[];
  warnings: string[];
  /** The engine's plan (layer table, weights, parameter counts, feature caching); null if it could not be built. */
  plan: JobPlan | null;
}

/** Builds the target network for a spec without training it (workers/engine/plan.ts). */
export type Planner = (spec: JobSpec, dataset: DatasetInfo, tenant: string) => Promise<JobPlan>;

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** JSON with object keys sorted, so equal bodies hash equally whatever their key order. */
export function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
