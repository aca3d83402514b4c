import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { jobOutputFile } from '../storage/job-output';
import type { Redis } from 'ioredis';
import type { BaseLogger, Logger } from 'pino';
import type { AuditEntry, AuditLog } from '../auth/audit';
import { DEFAULT_TENANT, type Principal } from '../auth/principal';
import { ConflictError, GraftError, NotFoundError } from '../errors';
import { preflight, type DatasetInfo, type PreflightLimits, type TenantStorage } from '../spec/preflight';
import { refersTo, jobTenant } from '../tenants/refs';
import type { JobPlan } from '../spec/plan';
import { isUseJob, outputOf, withDefaults, type AnyJobSpec, type JobSpec, type UseJobSpec } from '../spec/schema';
import { preflightUse, useDefaults } from '../spec/use-preflight';
import type { JobQueue } from './job-queue';
import type { JobStore, ListOptions } from './job-store';
import type { JobEvent } from './job-events';
import type { DataLayout } from '../storage/layout';
import { listTrainingCheckpoints, type TrainingCheckpointInfo } from '../storage/training-checkpoints';
import type { TenantJobLimits } from '../tenants/job-limits';
import { TERMINAL_STATUSES, type Job } from './types';

/** Who is asking: a job of another tenant is invisible to anyone but an admin. */
export type Viewer = Pick<Principal, 'tenant' | 'role'>;
const seesAll = (viewer: Viewer) => viewer.role === 'admin';

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
      /** Per-tenant job quotas (the scripts apply `defaults` unless the tenant's record overrides them). */
      limits: TenantJobLimits;
      /** Retry-After of a 429 for the job quota (jobs must finish first). */
      quotaRetryAfterSeconds: number;
      /** Where job.create is recorded (with the job, in create.lua, when the log can prepare the write). */
      audit?: AuditLog;
    },
  ) {}

  /**
   * Every check a submission gets, and the network the worker would build, without enqueueing
   * anything. `errors` lists everything found, with the codes a job would fail with.
   */
  async plan(input: AnyJobSpec, tenant: string = DEFAULT_TENANT): Promise<PlanReport> {
    if (isUseJob(input)) {
      const errors = await preflightUse(input, this.deps.storage.forTenant(tenant));
      return { valid: errors.length === 0, errors: sortErrors(errors).map((e) => ({ code: e.code, message: e.message, param: e.param })), warnings: [], plan: null };
    }
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
   * Checks, then reserves the output name, records the job and enqueues it in one step (create.lua),
   * so a failure at any point leaves either the whole job or nothing.
   */
  async submit(input: AnyJobSpec, actor: Principal, id: string = randomUUID(), log: Pick<BaseLogger, 'info'> = this.deps.logger): Promise<Job> {
    const { tenant } = actor;
    if (isUseJob(input)) return this.submitUse(useDefaults(input), actor, id, log);
    const spec = withDefaults(input);
    const report = await preflight(spec, this.deps.storage.forTenant(tenant), this.deps.preflightLimits);
    if (report.errors.length > 0) throw pickFirst(report.errors);
    // What only building the network reveals (shape mismatches, a head that does not fit the
    // classes, an unbuildable topology) is refused now rather than after minutes in the queue.
    await this.deps.planner(spec, report.dataset!, tenant);

    const job = await this.record(id, spec, actor);
    for (const warning of report.warnings) await this.deps.store.events.append(id, { level: 'warning', message: warning });
    // `log` is the request's logger when there is one, so the line carries the request id.
    log.info({ jobId: id, tenant, type: spec.type, output: spec.output.checkpoint }, 'job queued');
    return job;
  }

  /** An evaluate or predict job: it writes no checkpoint, so nothing is reserved and nothing planned. */
  private async submitUse(spec: UseJobSpec, actor: Principal, id: string, log: Pick<BaseLogger, 'info'>): Promise<Job> {
    const { tenant } = actor;
    const errors = await preflightUse(spec, this.deps.storage.forTenant(tenant));
    if (errors.length > 0) throw pickFirst(errors);
    const job = await this.record(id, spec, actor);
    log.info({ jobId: id, tenant, type: spec.type, checkpoint: spec.source.checkpoint }, 'job queued');
    return job;
  }

  /**
   * Records a checked job and enqueues it. Quota, output reservation, BullMQ's insert, record,
   * indexes, fair-scheduling tag and the job.create audit entry are one script (create.lua, one
   * round trip): a job is never recorded without its queue entry, nor queued without its record.
   */
  private async record(id: string, spec: AnyJobSpec, actor: Principal): Promise<Job> {
    const { store, queue, audit } = this.deps;
    const { tenant } = actor;
    const entry: AuditEntry = { actor, action: 'job.create', target: { kind: 'job', tenant, id }, details: { type: spec.type, output: outputOf(spec) || null } };
    const write = audit?.prepare?.(entry);
    const outcome = await store.create(id, spec, tenant, this.deps.limits.defaults, write, queue.insertFor(id));
    if ('quota' in outcome) {
      const { used, limit } = outcome.quota;
      throw new GraftError(
        'quota_exceeded',
        `The tenant "${tenant}" already has ${used} queued or running jobs, its quota of ${limit} (maxActiveJobs; TENANT_MAX_ACTIVE_JOBS by default); submit again once some have finished, or cancel some.`,
        { statusCode: 429, retryAfterSeconds: this.deps.quotaRetryAfterSeconds, details: { quota: 'maxActiveJobs', limit, used } },
      );
    }
    if (!('created' in outcome)) {
      throw new ConflictError('checkpoint_reserved', `Another queued or running job already writes the checkpoint "${outputOf(spec)}".`, '/output/checkpoint');
    }
    if (audit && !write) await audit.record(entry);
    return outcome.created;
  }

  /**
   * Submission with an Idempotency-Key: the first request with a key creates the job; a retry
   * with the same key and body gets that job back (`replayed`), another body under the same key
   * is a conflict. The key is claimed before submitting, so two racing retries create one job.
   * Keys are per tenant: two tenants using the same key never meet.
   */
  async submitIdempotent(input: AnyJobSpec, actor: Principal, key: string, log?: Pick<BaseLogger, 'info'>): Promise<{ job: Job; replayed: boolean }> {
    const { tenant } = actor;
    const { redis, idempotencyTtlSeconds } = this.deps.idempotency;
    // The default tenant hashes the bare key, as before tenants, so retries across the upgrade still match.
    const redisKey = this.deps.store.keys.idempotency(sha256(tenant === DEFAULT_TENANT ? key : `${tenant}\n${key}`));
    const bodyHash = sha256(stableStringify(input));
    const id = randomUUID();
    const claimed = await redis.set(redisKey, JSON.stringify({ jobId: id, bodyHash }), 'EX', idempotencyTtlSeconds, 'NX');
    if (claimed !== 'OK') {
      const previous = JSON.parse((await redis.get(redisKey)) ?? '{}') as { jobId?: string; bodyHash?: string };
      if (previous.bodyHash !== bodyHash) {
        throw new ConflictError('idempotency_key_reused', 'This Idempotency-Key was already used with a different request body; use a new key for a new job.', null);
      }
      const found = await this.deps.store.get(previous.jobId ?? '');
      const job = found && found.tenant === tenant ? found : null;
      if (!job) throw new ConflictError('idempotency_key_in_flight', 'A request with this Idempotency-Key is still being processed (or failed validation); retry in a moment.', null);
      return { job, replayed: true };
    }
    try {
      return { job: await this.submit(input, actor, id, log), replayed: false };
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
  async cancel(id: string, viewer: Viewer): Promise<{ job: Job; pending: boolean }> {
    const { store, queue } = this.deps;
    const job = await this.get(id, viewer);
    if (job.status === 'cancelled') return { job, pending: false };
    const outcome = await store.cancel(id, outputOf(job.spec), job.tenant);
    if (outcome === 'missing') return { job: await this.get(id, viewer), pending: false };
    if (outcome === 'finishing') {
      throw new ConflictError('job_finishing', 'The job is already writing its output checkpoint; it can no longer be cancelled.', null);
    }
    if (outcome === 'succeeded' || outcome === 'failed') {
      throw new ConflictError('job_finished', `The job already ${outcome}; only queued or running jobs can be cancelled.`, null);
    }
    // The record is the truth; the queue entry is only tidied (a worker holding it skips it).
    if (outcome === 'cancelled') await queue.remove(id);
    const now = await this.get(id, viewer);
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
        return refersTo(j.spec.source?.checkpoint, own, tenant, name) || (own === tenant && outputOf(j.spec) === name);
      })
      .map((j) => j.id);
  }

  /** The JSONL file of a succeeded predict job; 409 while it is not ready (or the job is not a predict job). */
  async outputFile(id: string, viewer: Viewer): Promise<string> {
    const job = await this.get(id, viewer);
    if (job.spec.type !== 'predict') throw new ConflictError('no_output', `Job "${id}" is a ${job.spec.type} job; only predict jobs write an output file.`, null);
    if (job.status !== 'succeeded') throw new ConflictError('output_not_ready', `Job "${id}" is ${job.status}; its output is ready once it has succeeded.`, null);
    const file = jobOutputFile(this.deps.layout, id);
    const exists = await fs.stat(file).then((s) => s.isFile(), () => false);
    if (!exists) throw new NotFoundError('output_not_found', `The output of job "${id}" is gone (removed with the job's folder).`, null);
    return file;
  }

  async trainingCheckpoints(id: string, viewer: Viewer): Promise<TrainingCheckpointInfo[]> {
    await this.get(id, viewer);
    return listTrainingCheckpoints(this.deps.layout, id);
  }

  async events(id: string, viewer: Viewer, opts: { after?: string; limit: number }): Promise<JobEvent[]> {
    return this.journal(await this.get(id, viewer), opts);
  }

  /** The events of a job the caller has already been allowed to see (its record gives the first one). */
  journal(job: Job, opts: { after?: string; limit: number }): Promise<JobEvent[]> {
    return this.deps.store.events.list(job.id, opts, job.createdAt);
  }

  /**
   * The job, if the viewer may see it. Another tenant's job is the same 404 as a missing id, after
   * the same Redis read, so neither the answer nor its timing tells that it exists.
   */
  async get(id: string, viewer: Viewer): Promise<Job> {
    const job = await this.deps.store.get(id);
    if (!job || (job.tenant !== viewer.tenant && !seesAll(viewer))) throw new NotFoundError('job_not_found', `There is no job "${id}" (finished jobs are kept for a limited time).`, null);
    return job;
  }

  /**
   * Newest first. A member or reader sees its tenant's jobs (its own index; a `tenant` naming
   * another one finds nothing); an admin every tenant's, or one tenant's with `tenant`.
   */
  list(opts: Omit<ListOptions, 'tenant'> & { tenant?: string }, viewer: Viewer) {
    if (!seesAll(viewer) && opts.tenant !== undefined && opts.tenant !== viewer.tenant) return Promise.resolve({ jobs: [] as Job[], nextCursor: null });
    return this.deps.store.list({ ...opts, tenant: seesAll(viewer) ? opts.tenant : viewer.tenant });
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
