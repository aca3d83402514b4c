import type { Redis } from 'ioredis';
import type { JobSpec } from '../spec/schema';
import { JobEvents } from './job-events';
import { TERMINAL_STATUSES, type Job, type JobError, type JobProgress, type JobResult, type JobStatus } from './types';

/**
 * Job records in Redis, the source of truth for what users see. BullMQ only moves work; its
 * own entries can be trimmed at any time without losing a job's story.
 *
 * Layout (prefix = graft:<queue>):
 *   <prefix>:job:<id>            hash: status, type, createdAt, startedAt, finishedAt, attempts, seq,
 *                                      spec, progress, result, error (JSON strings)
 *   <prefix>:jobs                zset of ids by submission sequence (newest = highest)
 *   <prefix>:jobs:<status>       zset per status, same scores, for filtered listing
 *   <prefix>:seq                 submission counter
 *   <prefix>:output:<name>       which job will write checkpoint <name> (a reservation)
 */

/** Atomic status transition: only from one of the allowed statuses; moves the id between status indexes. */
const TRANSITION_LUA = `
local key = KEYS[1]
local current = redis.call('HGET', key, 'status')
if not current then return {0, ''} end
local allowed = false
for from in string.gmatch(ARGV[2], '[^,]+') do
  if from == current then allowed = true end
end
if not allowed then return {0, current} end
local seq = redis.call('HGET', key, 'seq')
redis.call('ZREM', KEYS[2] .. ':' .. current, ARGV[1])
redis.call('ZADD', KEYS[2] .. ':' .. ARGV[3], seq, ARGV[1])
redis.call('HSET', key, 'status', ARGV[3])
for i = 5, #ARGV, 2 do
  if ARGV[i + 1] == '\\0' then redis.call('HDEL', key, ARGV[i]) else redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
end
if ARGV[4] ~= '' then redis.call('EXPIRE', key, tonumber(ARGV[4])) end
return {1, current}
`;

/** Progress is only written while the job is running, so a late report never revives a finished job. */
const PROGRESS_LUA = `
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1])
return 1
`;

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
}

export interface JobPatch {
  startedAt?: string | null;
  finishedAt?: string | null;
  progress?: JobProgress | null;
  result?: JobResult | null;
  error?: JobError | null;
  attempts?: number;
  worker?: string;
}

export class JobStore {
  private readonly prefix: string;
  readonly events: JobEvents;
  /** Pub/sub channel on which cancel requests reach the worker holding the job. */
  readonly cancelChannel: string;

  constructor(
    private readonly redis: Redis,
    queueName: string,
    private readonly retentionSeconds: number,
  ) {
    this.prefix = `graft:${queueName}`;
    this.events = new JobEvents(redis, queueName);
    this.cancelChannel = `${this.prefix}:cancel`;
    if (!('graftTransition' in redis)) {
      redis.defineCommand('graftTransition', { numberOfKeys: 2, lua: TRANSITION_LUA });
      redis.defineCommand('graftProgress', { numberOfKeys: 1, lua: PROGRESS_LUA });
    }
  }

  private jobKey(id: string): string {
    return `${this.prefix}:job:${id}`;
  }

  outputKey(name: string): string {
    return `${this.prefix}:output:${name}`;
  }

  /** Creates a queued job record. */
  async create(id: string, spec: JobSpec, createdAt = new Date()): Promise<Job> {
    const seq = await this.redis.incr(`${this.prefix}:seq`);
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
    await this.redis
      .multi()
      .hset(this.jobKey(id), {
        status: job.status,
        type: job.type,
        createdAt: job.createdAt,
        attempts: 0,
        seq,
        spec: JSON.stringify(spec),
      })
      .zadd(`${this.prefix}:jobs`, seq, id)
      .zadd(`${this.prefix}:jobs:queued`, seq, id)
      .exec();
    await this.events.append(id, { message: 'Job queued.', data: { status: 'queued' } });
    return job;
  }

  async get(id: string): Promise<Job | null> {
    const h = await this.redis.hgetall(this.jobKey(id));
    return h.status ? this.fromHash(id, h) : null;
  }

  /** Removes a record entirely (only used to roll back a submission that could not be enqueued). */
  async remove(id: string): Promise<void> {
    const status = await this.redis.hget(this.jobKey(id), 'status');
    const multi = this.redis.multi().del(this.jobKey(id)).zrem(`${this.prefix}:jobs`, id);
    if (status) multi.zrem(`${this.prefix}:jobs:${status}`, id);
    await multi.exec();
  }

  /** Newest first. Ids whose records expired are dropped from the indexes as they are met. */
  async list(opts: ListOptions): Promise<{ jobs: Job[]; nextCursor: string | null }> {
    const index = opts.status ? `${this.prefix}:jobs:${opts.status}` : `${this.prefix}:jobs`;
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

  /**
   * Moves a job to `to` if its current status is one of `from`, writing `patch` in the same step.
   * Terminal statuses start the retention clock.
   */
  async transition(id: string, from: readonly JobStatus[], to: JobStatus, patch: JobPatch = {}): Promise<TransitionResult> {
    const args: string[] = [id, from.join(','), to, TERMINAL_STATUSES.includes(to) ? String(this.retentionSeconds) : ''];
    for (const [field, value] of Object.entries(patch)) {
      if (value === undefined) continue;
      args.push(field, value === null ? '\0' : typeof value === 'string' || typeof value === 'number' ? String(value) : JSON.stringify(value));
    }
    const [ok, previous] = (await (this.redis as unknown as RedisWithCommands).graftTransition(this.jobKey(id), `${this.prefix}:jobs`, ...args)) as [number, string];
    if (ok === 1) {
      const error = patch.error ?? null;
      await this.events.append(id, {
        level: to === 'failed' ? 'error' : error ? 'warning' : 'info',
        message: error ? `Job ${to}: ${error.message}` : `Job ${to}.`,
        data: { status: to, previous, ...(error ? { error } : {}), ...(patch.worker ? { worker: patch.worker } : {}) },
      });
      if (TERMINAL_STATUSES.includes(to)) {
        // The overall index keeps the id until listing finds the record gone.
        await this.redis.expire(this.jobKey(id), this.retentionSeconds);
        await this.events.expire(id, this.retentionSeconds);
        await this.redis.del(this.cancelKey(id));
      }
    }
    return { ok: ok === 1, previous: previous as JobStatus | '' };
  }

  /** Jobs that are queued or running (their specs say which datasets and checkpoints they use). */
  async active(): Promise<Job[]> {
    const ids = [
      ...(await this.redis.zrange(`${this.prefix}:jobs:queued`, '0', '-1')),
      ...(await this.redis.zrange(`${this.prefix}:jobs:running`, '0', '-1')),
    ];
    const jobs = await Promise.all(ids.map((id) => this.get(id)));
    return jobs.filter((j): j is Job => j !== null && !TERMINAL_STATUSES.includes(j.status));
  }

  async setProgress(id: string, progress: JobProgress): Promise<boolean> {
    const r = await (this.redis as unknown as RedisWithCommands).graftProgress(this.jobKey(id), JSON.stringify(progress));
    return r === 1;
  }

  private cancelKey(id: string): string {
    return `${this.prefix}:cancel:${id}`;
  }

  /** Marks a running job for cancellation and tells the workers; the holder stops within a batch. */
  async requestCancel(id: string): Promise<void> {
    await this.redis.set(this.cancelKey(id), '1', 'EX', this.retentionSeconds);
    await this.redis.publish(this.cancelChannel, id);
  }

  async isCancelRequested(id: string): Promise<boolean> {
    return (await this.redis.exists(this.cancelKey(id))) === 1;
  }

  async incrementAttempts(id: string): Promise<number> {
    return this.redis.hincrby(this.jobKey(id), 'attempts', 1);
  }

  /** Claims checkpoint name `name` for job `id`; false if another unfinished job holds it. */
  async reserveOutput(name: string, id: string): Promise<boolean> {
    const holder = await this.redis.get(this.outputKey(name));
    if (holder && holder !== id) {
      const other = await this.get(holder);
      if (other && !TERMINAL_STATUSES.includes(other.status)) return false;
      // The holder finished without writing (failed/cancelled) or expired: take over atomically.
      const swapped = await this.redis.eval(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0",
        1,
        this.outputKey(name),
        holder,
        id,
      );
      return swapped === 1;
    }
    if (holder === id) return true;
    return (await this.redis.set(this.outputKey(name), id, 'NX')) === 'OK';
  }

  /** Releases a reservation if `id` still holds it. */
  async releaseOutput(name: string, id: string): Promise<void> {
    await this.redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, this.outputKey(name), id);
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
      spec: json<JobSpec>(h.spec)!,
      progress: json<JobProgress>(h.progress),
      result: json<JobResult>(h.result),
      error: json<JobError>(h.error),
    };
  }
}

interface RedisWithCommands {
  graftTransition(...args: string[]): Promise<unknown>;
  graftProgress(...args: string[]): Promise<unknown>;
}
