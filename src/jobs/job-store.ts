import type { Redis } from 'ioredis';
import { outputOf, type AnyJobSpec } from '../spec/schema';
import { JobEvents } from './job-events';
import { JobKeys } from './keys';
import { JobScripts } from './scripts';
import { TERMINAL_STATUSES, type Job, type JobError, type JobProgress, type JobResult, type JobStatus } from './types';

/**
 * Job records in Redis, the source of truth for what users see. BullMQ only moves work; its
 * own entries can be trimmed at any time without losing a job's story. Key names: keys.ts.
 * Every change of a job's status is one Lua script (src/jobs/lua), so the record, the status
 * indexes, TTLs, the output reservation, the cancel flag and the journal never disagree, and
 * every write that ends an attempt's job is conditional on that attempt still owning it.
 */

/** Reservations held by an upload start with this (create.lua respects them until their TTL). */
export const UPLOAD_HOLDER_PREFIX = 'upload:';

export interface ListOptions {
  status?: JobStatus;
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
export type Guard = { token: string } | { bull: 'missing' | 'failed' } | 'none';

export interface TransitionRequest {
  from: readonly JobStatus[];
  to: JobStatus;
  guard: Guard;
  /** The checkpoint the job reserves (released when the job ends). */
  output: string;
  patch?: JobPatch;
  /** The journal line; by default "Job <to>." (with the error's message, if any). */
  message?: string;
  data?: Record<string, unknown>;
}

/** What the start of an attempt found: run it, or end it (cancelled, gone, lost, already finished). */
export type StartOutcome = 'running' | 'cancelled' | 'lost' | 'missing' | 'succeeded' | 'failed';
export type CancelOutcome = 'cancelled' | 'requested' | 'finishing' | 'missing' | 'succeeded' | 'failed';
/** ok = keep going; lost = another attempt owns the job; cancelled = a cancel is pending. */
export type PollOutcome = 'ok' | 'lost' | 'cancelled' | 'missing' | JobStatus;

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

  private run(name: Parameters<JobScripts['run']>[0], id: string, output: string, args: (string | number)[]): Promise<unknown> {
    return this.scripts.run(name, this.keys.scriptKeys(id, output), args);
  }

  /**
   * Reserves the output name and creates the queued record in one step (create.lua). Null when
   * another queued or running job (or an upload) holds the name.
   */
  async create(id: string, spec: AnyJobSpec, createdAt = new Date()): Promise<Job | null> {
    const job: Job = {
      id,
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
    const [ok] = (await this.run('create', id, outputOf(spec), [id, spec.type, job.createdAt, JSON.stringify(spec), this.keys.jobPrefix, UPLOAD_HOLDER_PREFIX, JSON.stringify({ status: 'queued' }), outputOf(spec) === '' ? '0' : '1'])) as [number, unknown];
    return ok === 1 ? job : null;
  }

  /** Removes a record entirely, with its reservation (rolls back a submission that could not be enqueued). */
  async discard(id: string, output: string): Promise<void> {
    await this.run('discard', id, output, [id]);
  }

  async get(id: string): Promise<Job | null> {
    const h = await this.redis.hgetall(this.keys.job(id));
    return h.status ? this.fromHash(id, h) : null;
  }

  /** Newest first. Ids whose records expired are dropped from the indexes as they are met. */
  async list(opts: ListOptions): Promise<{ jobs: Job[]; nextCursor: string | null }> {
    const index = opts.status ? this.keys.byStatus(opts.status) : this.keys.allJobs;
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
        if (job && (!opts.status || job.status === opts.status)) jobs.push(job);
        else if (!job) await this.redis.zrem(index, id);
      }
    }
    const last = jobs.length === opts.limit ? upper.slice(1) : null;
    const more = last !== null && (await this.redis.zcount(index, '-inf', `(${last}`)) > 0;
    return { jobs, nextCursor: more ? last : null };
  }

  /** An attempt begins (start.lua): the job becomes running, or ends cancelled if a cancel is pending. */
  async start(id: string, output: string, token: string, worker: string): Promise<StartOutcome> {
    return (await this.run('start', id, output, [id, token, worker, new Date().toISOString(), this.retentionSeconds])) as StartOutcome;
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
    const [ok, previous, refused] = (await this.run('transition', id, req.output, [id, guard[0], guard[1], req.from.join(','), req.to, this.retentionSeconds, level, message, JSON.stringify(data), ...fields])) as [number, string, string?];
    return { ok: ok === 1, previous: previous as JobStatus | '', ...(ok === 1 ? {} : { refused: refused as TransitionResult['refused'] }) };
  }

  /** A cancel as state (cancel.lua): queued → cancelled now; running → flag set and the holder told. */
  async cancel(id: string, output: string): Promise<CancelOutcome> {
    return (await this.run('cancel', id, output, [id, new Date().toISOString(), this.retentionSeconds, this.keys.cancelChannel])) as CancelOutcome;
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

  /** Jobs that are queued or running (their specs say which datasets and checkpoints they use). */
  async active(): Promise<Job[]> {
    const ids = [...(await this.redis.zrange(this.keys.byStatus('queued'), '0', '-1')), ...(await this.redis.zrange(this.keys.byStatus('running'), '0', '-1'))];
    const jobs = await Promise.all(ids.map((id) => this.get(id)));
    return jobs.filter((j): j is Job => j !== null && !TERMINAL_STATUSES.includes(j.status));
  }

  async isCancelRequested(id: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.cancel(id))) === 1;
  }

  /** The job (or upload) holding checkpoint name `name`, if any. */
  async outputHolder(name: string): Promise<string | null> {
    return this.redis.get(this.keys.output(name));
  }

  /**
   * Holds `name` for an upload while it installs (at most `seconds`): true unless a queued or
   * running job (or another upload) holds it. Released with releaseUploadHold.
   */
  async holdForUpload(name: string, uploadId: string, seconds: number): Promise<boolean> {
    const holder = `${UPLOAD_HOLDER_PREFIX}${uploadId}`;
    for (let tries = 0; tries < 3; tries++) {
      if ((await this.redis.set(this.keys.output(name), holder, 'EX', seconds, 'NX')) === 'OK') return true;
      const current = await this.redis.get(this.keys.output(name));
      if (current === null) continue;
      if (current.startsWith(UPLOAD_HOLDER_PREFIX)) return false;
      const other = await this.get(current);
      if (other && !TERMINAL_STATUSES.includes(other.status)) return false;
      // A stale reservation (its job ended or expired): replace it only if it is still that one.
      const swapped = await this.redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end return 0", 1, this.keys.output(name), current, holder, seconds);
      if (swapped === 1) return true;
    }
    return false;
  }

  async releaseUploadHold(name: string, uploadId: string): Promise<void> {
    await this.redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, this.keys.output(name), `${UPLOAD_HOLDER_PREFIX}${uploadId}`);
  }

  /** Finished jobs whose records expire at or before `atMs` (epoch ms), oldest first. */
  async expiredBy(atMs: number, limit: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.expiries, '-inf', atMs, 'LIMIT', 0, limit);
  }

  /** Drops every key still naming an expired job (forget.lua); false if its record still exists. */
  async forget(id: string): Promise<boolean> {
    return (await this.run('forget', id, '', [id])) === 1;
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
