import type { Redis } from 'ioredis';
import type { AuditWrite } from '../auth/audit';
import type { BullInsert } from './bull-insert';
import { DEFAULT_TENANT } from '../auth/principal';
import { outputOf, type AnyJobSpec } from '../spec/schema';
import { JobEvents } from './job-events';
import { JobKeys } from './keys';
import { CREATE_KEY_COUNT, JobScripts, SCRIPT_KEY_COUNT } from './scripts';
import { TERMINAL_STATUSES, type Job, type JobError, type JobProgress, type JobResult, type JobStatus } from './types';

/**
 * Job records in Redis, the source of truth for what users see. BullMQ only moves work; its
 * own entries can be trimmed at any time without losing a job's story. Key names: keys.ts.
 * Every change of a job's status is one Lua script (src/jobs/lua), so the record, the status
 * indexes, TTLs, the output reservation, the cancel flag and the journal never disagree, and
 * every write that ends an attempt's job is conditional on that attempt still owning it.
 */

/** BullMQ's highest priority (lower runs first); fair-scheduling tags beyond it are clamped to it. */
export const MAX_PRIORITY = 2 ** 21 - 1;

/** What create.lua did: created the job (with its BullMQ priority), or refused it and why. */
export type CreateOutcome = { created: Job; priority: number } | { reserved: true } | { quota: { used: number; limit: number } };

/** A finished job whose record expired: its id, tenant and entry in the expiry index. */
export interface ExpiredJob {
  id: string;
  tenant: string;
  member: string;
}

/** create.lua's BullMQ keys and arguments when it only records (no queue entry). */
const NO_BULL_KEYS: string[] = new Array<string>(CREATE_KEY_COUNT - SCRIPT_KEY_COUNT).fill('');
const NO_BULL_ARGS = ['', '', ''];

/** Reservations held by an upload start with this (create.lua respects them until their TTL). */
export const UPLOAD_HOLDER_PREFIX = 'upload:';

export interface ListOptions {
  status?: JobStatus;
  /** Only this tenant's jobs (its own index); every tenant's when absent (admins). */
  tenant?: string;
  limit: number;
  /** Opaque cursor from a previous page (the sequence number of its last job). */
  cursor?: string;
}

export interface TransitionResult {
  ok: boolean;
  /** Status before the call ('' if the job does not exist). */
  previous: JobStatus | '';
  /** Why it did not happen: the guard failed (a lost lock), the status did not allow it, or no record. */
  refused?: 'guard' | 'status' | 'missing';
}

export interface JobPatch {
  startedAt?: string | null;
  finishedAt?: string | null;
  progress?: JobProgress | null;
  result?: JobResult | null;
  error?: JobError | null;
}

/**
 * What must still hold for a transition to count: the attempt's BullMQ lock token (fencing), or,
 * for the reconciler, BullMQ's view of the job (gone, or failed).
 */
export type Guard = { token: string } | { bull: 'missing' | 'failed' | 'unlocked' } | 'none';

export interface TransitionRequest {
  from: readonly JobStatus[];
  to: JobStatus;
  guard: Guard;
  /** The checkpoint the job reserves (released when the job ends). */
  output: string;
  /** The job's tenant (its indexes and reservation). */
  tenant: string;
  patch?: JobPatch;
  /** The journal line; by default "Job <to>." (with the error's message, if any). */
  message?: string;
  data?: Record<string, unknown>;
}

/** What the start of an attempt found: run it, or end it (cancelled, gone, lost, already finished). */
export type StartOutcome = 'running' | 'throttled' | 'cancelled' | 'lost' | 'missing' | 'succeeded' | 'failed';
export type CancelOutcome = 'cancelled' | 'requested' | 'finishing' | 'missing' | 'succeeded' | 'failed';
/** ok = keep going; lost = another attempt owns the job; cancelled = a cancel is pending. */
export type PollOutcome = 'ok' | 'lost' | 'cancelled' | 'missing' | JobStatus;

/** The spec of each job this process has just created, as the JSON create.lua stored (see jobJson). */
const createdSpecJson = new WeakMap<Job, string>();

/**
 * A job as JSON. A job this process has just created (the 202 of a submission) reuses its spec's
 * JSON, already built for create.lua, instead of serializing the spec a second time: the spec is
 * most of the record. The spec sits after the record's scalar fields, so the first `"spec":0` is
 * its placeholder (a string field holding those characters would have its quotes escaped).
 */
export function jobJson(job: Job): string {
  const spec = createdSpecJson.get(job);
  if (spec === undefined) return JSON.stringify(job);
  return JSON.stringify({ ...job, spec: 0 }).replace('"spec":0', () => `"spec":${spec}`);
}

export class JobStore {
  readonly keys: JobKeys;
  readonly events: JobEvents;
  private readonly scripts: JobScripts;

  constructor(
    private readonly redis: Redis,
    queueName: string,
    readonly retentionSeconds: number,
  ) {
    this.keys = new JobKeys(queueName);
    this.events = new JobEvents(redis, queueName);
    this.scripts = new JobScripts(redis);
  }

  /** Pub/sub channel on which cancel requests reach the worker holding the job. */
  get cancelChannel(): string {
    return this.keys.cancelChannel;
  }

  /** Scripts that only touch the record, its lock and its flags (poll, progress, commit) get the default tenant's keys, unread. */
  private run(name: Parameters<JobScripts['run']>[0], id: string, output: string, args: (string | number)[], tenant = DEFAULT_TENANT): Promise<unknown> {
    return this.scripts.run(name, this.keys.scriptKeys(id, output, tenant), args);
  }

  /**
   * Checks the tenant's quota, reserves the output name, creates the queued record and gives it
   * its fair-scheduling priority, in one step (create.lua): one round trip whatever it finds.
   */
  /** `audit`: the job.create entry, written by the same script (one round trip, never one without the other). */
  async create(id: string, spec: AnyJobSpec, tenant: string, limits: { maxActiveJobs: number }, audit?: AuditWrite, enqueue?: BullInsert, createdAt = new Date()): Promise<CreateOutcome> {
    const job: Job = {
      id,
      tenant,
      type: spec.type,
      status: 'queued',
      createdAt: createdAt.toISOString(),
      startedAt: null,
      finishedAt: null,
      attempts: 0,
      worker: null,
      spec,
      progress: null,
      result: null,
      error: null,
    };
    const output = outputOf(spec);
    const keys = this.keys.createKeys(id, output, tenant);
    keys.push(...(enqueue?.keys ?? NO_BULL_KEYS));
    const specJson = JSON.stringify(spec);
    const args = [id, spec.type, job.createdAt, specJson, this.keys.jobPrefix, UPLOAD_HOLDER_PREFIX, tenant, limits.maxActiveJobs, MAX_PRIORITY, output === '' ? '0' : '1', audit?.stream ?? '', audit?.minId ?? '', ...(enqueue?.args ?? NO_BULL_ARGS), ...(audit?.fields ?? [])];
    const reply = (await this.scripts.run('create', keys, args)) as [number, string | number, ...(string | number)[]];
    if (reply[0] === 1) {
      createdSpecJson.set(job, specJson);
      return { created: job, priority: Number(reply[2]) };
    }
    if (reply[1] === 'quota') return { quota: { used: Number(reply[2]), limit: Number(reply[3]) } };
    if (reply[1] === 'enqueue') throw new Error(`BullMQ refused to add job ${id} (its error code ${reply[2]}); nothing was recorded.`);
    return { reserved: true };
  }

  async get(id: string): Promise<Job | null> {
    const h = await this.redis.hgetall(this.keys.job(id));
    return h.status ? this.fromHash(id, h) : null;
  }

  /** The job's BullMQ priority, its fair-scheduling tag (a requeued job keeps its place); 1 for records older than tags. */
  async priorityOf(id: string): Promise<number> {
    return Number((await this.redis.hget(this.keys.job(id), 'priority')) ?? 1) || 1;
  }

  /** Newest first. Ids whose records expired are dropped from the indexes as they are met. */
  async list(opts: ListOptions): Promise<{ jobs: Job[]; nextCursor: string | null }> {
    const index =
      opts.tenant === undefined
        ? opts.status
          ? this.keys.byStatus(opts.status)
          : this.keys.allJobs
        : opts.status
          ? this.keys.tenantByStatus(opts.tenant, opts.status)
          : this.keys.tenantJobs(opts.tenant);
    const max = opts.cursor ? `(${opts.cursor}` : '+inf';
    const jobs: Job[] = [];
    let upper = max;
    let exhausted = false;
    while (jobs.length < opts.limit && !exhausted) {
      const want = opts.limit - jobs.length;
      const page = await this.redis.zrevrangebyscore(index, upper, '-inf', 'WITHSCORES', 'LIMIT', 0, want);
      if (page.length < want * 2) exhausted = true;
      for (let i = 0; i < page.length; i += 2) {
        const id = page[i];
        upper = `(${page[i + 1]}`;
        const job = await this.get(id);
        if (job && (!opts.status || job.status === opts.status) && (opts.tenant === undefined || job.tenant === opts.tenant)) jobs.push(job);
        else if (!job) await this.redis.zrem(index, id);
      }
    }
    const last = jobs.length === opts.limit ? upper.slice(1) : null;
    const more = last !== null && (await this.redis.zcount(index, '-inf', `(${last}`)) > 0;
    return { jobs, nextCursor: more ? last : null };
  }

  /** An attempt begins (start.lua): the job becomes running, or ends cancelled if a cancel is pending. */
  async start(id: string, output: string, tenant: string, token: string, worker: string, limits: { maxConcurrentJobs: number }): Promise<StartOutcome> {
    return (await this.run('start', id, output, [id, token, worker, new Date().toISOString(), this.retentionSeconds, limits.maxConcurrentJobs], tenant)) as StartOutcome;
  }

  /** Moves a job to `to` if its status is one of `from` and the guard holds (transition.lua). */
  async transition(id: string, req: TransitionRequest): Promise<TransitionResult> {
    const guard = req.guard === 'none' ? ['none', ''] : 'token' in req.guard ? ['token', req.guard.token] : [`bull-${req.guard.bull}`, ''];
    const patch = req.patch ?? {};
    const error = patch.error ?? null;
    const fields: string[] = [];
    for (const [field, value] of Object.entries(patch)) {
      if (value === undefined) continue;
      fields.push(field, value === null ? '\0' : typeof value === 'string' ? value : JSON.stringify(value));
    }
    const level = req.to === 'failed' ? 'error' : error ? 'warning' : 'info';
    const message = req.message ?? (error ? `Job ${req.to}: ${error.message}` : `Job ${req.to}.`);
    const data = { status: req.to, ...(error ? { error } : {}), ...req.data };
    const [ok, previous, refused] = (await this.run('transition', id, req.output, [id, guard[0], guard[1], req.from.join(','), req.to, this.retentionSeconds, level, message, JSON.stringify(data), ...fields], req.tenant)) as [number, string, string?];
    return { ok: ok === 1, previous: previous as JobStatus | '', ...(ok === 1 ? {} : { refused: refused as TransitionResult['refused'] }) };
  }

  /** A cancel as state (cancel.lua): queued → cancelled now; running → flag set and the holder told. */
  async cancel(id: string, output: string, tenant: string): Promise<CancelOutcome> {
    return (await this.run('cancel', id, output, [id, new Date().toISOString(), this.retentionSeconds, this.keys.cancelChannel], tenant)) as CancelOutcome;
  }

  /** Asks to write the output checkpoint (commit.lua): 'ok' only for the owner of a running, uncancelled job. */
  async claimCommit(id: string, output: string, token: string): Promise<PollOutcome> {
    return (await this.run('commit', id, output, [id, token])) as PollOutcome;
  }

  /** Ownership and cancel, checked between batches (poll.lua). */
  async poll(id: string, token: string): Promise<PollOutcome> {
    return (await this.run('poll', id, '', [id, token])) as PollOutcome;
  }

  async setProgress(id: string, token: string, progress: JobProgress): Promise<boolean> {
    return (await this.run('progress', id, '', [id, token, JSON.stringify(progress)])) === 1;
  }

  /** Jobs that are queued or running (their specs say which datasets and checkpoints they use): one tenant's, or all. */
  async active(tenant?: string): Promise<Job[]> {
    const index = (status: JobStatus) => (tenant === undefined ? this.keys.byStatus(status) : this.keys.tenantByStatus(tenant, status));
    const ids = [...(await this.redis.zrange(index('queued'), '0', '-1')), ...(await this.redis.zrange(index('running'), '0', '-1'))];
    const jobs = await Promise.all(ids.map((id) => this.get(id)));
    return jobs.filter((j): j is Job => j !== null && !TERMINAL_STATUSES.includes(j.status));
  }

  async isCancelRequested(id: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.cancel(id))) === 1;
  }

  /** The job (or upload) holding tenant `tenant`'s checkpoint name `name`, if any. */
  async outputHolder(tenant: string, name: string): Promise<string | null> {
    return this.redis.get(this.keys.output(tenant, name));
  }

  /**
   * Holds `name` for an upload while it installs (at most `seconds`): true unless a queued or
   * running job (or another upload) holds it. Released with releaseUploadHold.
   */
  async holdForUpload(tenant: string, name: string, uploadId: string, seconds: number): Promise<boolean> {
    const holder = `${UPLOAD_HOLDER_PREFIX}${uploadId}`;
    const key = this.keys.output(tenant, name);
    for (let tries = 0; tries < 3; tries++) {
      if ((await this.redis.set(key, holder, 'EX', seconds, 'NX')) === 'OK') return true;
      const current = await this.redis.get(key);
      if (current === null) continue;
      if (current.startsWith(UPLOAD_HOLDER_PREFIX)) return false;
      const other = await this.get(current);
      if (other && !TERMINAL_STATUSES.includes(other.status)) return false;
      // A stale reservation (its job ended or expired): replace it only if it is still that one.
      const swapped = await this.redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end return 0", 1, key, current, holder, seconds);
      if (swapped === 1) return true;
    }
    return false;
  }

  async releaseUploadHold(tenant: string, name: string, uploadId: string): Promise<void> {
    await this.redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, this.keys.output(tenant, name), `${UPLOAD_HOLDER_PREFIX}${uploadId}`);
  }

  /** Finished jobs whose records expire at or before `atMs` (epoch ms), oldest first. */
  async expiredBy(atMs: number, limit: number): Promise<ExpiredJob[]> {
    const members = await this.redis.zrangebyscore(this.keys.expiries, '-inf', atMs, 'LIMIT', 0, limit);
    return members.map((member) => {
      // lib.lua's expiry_member: "<tenant>/<id>", or the bare id for the default tenant.
      const slash = member.indexOf('/');
      return slash < 0 ? { id: member, tenant: DEFAULT_TENANT, member } : { id: member.slice(slash + 1), tenant: member.slice(0, slash), member };
    });
  }

  /** Drops every key still naming an expired job (forget.lua); false if its record still exists. */
  async forget(expired: ExpiredJob): Promise<boolean> {
    return (await this.run('forget', expired.id, '', [expired.id, expired.member], expired.tenant)) === 1;
  }

  /**
   * Upgrade: records from before tenants join the default tenant (adopt.lua), once per queue (a
   * marker key remembers it). Idempotent; safe with several processes doing it at once.
   */
  async adoptUntenanted(batch = 500): Promise<number> {
    if (await this.redis.exists(this.keys.tenantsAdopted)) return 0;
    let adopted = 0;
    for (let start = 0; ; start += batch) {
      const ids = await this.redis.zrange(this.keys.allJobs, String(start), String(start + batch - 1));
      for (const id of ids) adopted += Number(await this.run('adopt', id, '', [id]));
      if (ids.length < batch) break;
    }
    await this.redis.set(this.keys.tenantsAdopted, new Date().toISOString());
    return adopted;
  }

  /** Redis's clock (ms): retention is measured on it, whatever the hosts' clocks say. */
  async now(): Promise<number> {
    const [s, us] = await this.redis.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  }

  private fromHash(id: string, h: Record<string, string>): Job {
    const json = <T>(v: string | undefined): T | null => (v ? (JSON.parse(v) as T) : null);
    return {
      id,
      tenant: h.tenant ?? DEFAULT_TENANT,
      type: h.type as Job['type'],
      status: h.status as JobStatus,
      createdAt: h.createdAt,
      startedAt: h.startedAt ?? null,
      finishedAt: h.finishedAt ?? null,
      attempts: Number(h.attempts ?? 0),
      worker: h.worker ?? null,
      spec: json<AnyJobSpec>(h.spec)!,
      progress: json<JobProgress>(h.progress),
      result: json<JobResult>(h.result),
      error: json<JobError>(h.error),
    };
  }
}
