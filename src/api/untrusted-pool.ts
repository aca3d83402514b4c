import path from 'node:path';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import { GraftError, UnavailableError, UnprocessableError } from '../errors';
import { rebuildGraftError, type TaskName, type TaskOutcome, type UntrustedTasks } from '../untrusted/protocol';

/**
 * A bounded pool of worker threads for the untrusted work of the API: building user networks
 * (plans, the submission check) and verifying uploaded files. Each task runs with a heap limit
 * and a time limit; a task over either is killed with its thread (piscina replaces the thread)
 * and the request gets a 422 naming the limit. A full queue is a 503 with Retry-After, never an
 * unbounded backlog. The task code lives in workers/untrusted/tasks.ts and is loaded by file
 * name in the threads only, so the API's own module tree never imports TensorFlow.js.
 */
export interface UntrustedPoolOptions {
  threads: number;
  taskTimeoutMs: number;
  maxHeapMb: number;
  maxQueue: number;
  logger: Logger;
  /** Start every thread now and keep them (the server); otherwise threads start on demand (tests, tools). */
  keepWarm?: boolean;
  /** The compiled task module; by default dist/workers/untrusted/tasks.js. */
  filename?: string;
}

export interface PoolStats {
  threads: number;
  running: number;
  queued: number;
  completed: number;
  /** Fraction of thread time spent on tasks since start (piscina's utilization). */
  utilization: number;
}

const RETRY_AFTER_SECONDS = 1;
/** Starting a thread loads TensorFlow.js: seconds on a busy machine, never this long. */
const WARMUP_TIMEOUT_MS = 120_000;

/** dist/workers/untrusted/tasks.js, whether this file runs compiled (dist/src/api) or from source under jest (src/api). */
function defaultTaskFile(): string {
  const fromSource = __filename.endsWith('.ts');
  return fromSource ? path.resolve(__dirname, '..', '..', 'dist', 'workers', 'untrusted', 'tasks.js') : path.resolve(__dirname, '..', '..', 'workers', 'untrusted', 'tasks.js');
}

export class UntrustedPool {
  private readonly piscina: Piscina;
  private closing: Promise<void> | null = null;
  /** Every thread started and its task module loaded; reset when a thread is killed. */
  private warm: Promise<void> | null = null;
  /** Tasks submitted and not yet settled (running or queued). */
  private inFlight = 0;

  constructor(private readonly opts: UntrustedPoolOptions) {
    this.piscina = new Piscina({
      filename: opts.filename ?? defaultTaskFile(),
      minThreads: opts.keepWarm ? opts.threads : 0,
      // Threads are started on demand (or at once with keepWarm) and then kept: starting one loads
      // TensorFlow.js, which must not be paid again by a later task's time limit.
      idleTimeout: Infinity,
      maxThreads: opts.threads,
      // The bound is enforced in run() (inFlight): piscina's own maxQueue does not count tasks
      // waiting for a thread that is still starting.
      resourceLimits: { maxOldGenerationSizeMb: opts.maxHeapMb, maxYoungGenerationSizeMb: Math.max(16, Math.floor(opts.maxHeapMb / 8)) },
    });
  }

  /** Runs one task; resolves with its value or rejects with the GraftError it (or a limit) produced. */
  async run<K extends TaskName>(name: K, input: UntrustedTasks[K][0], opts: { timeoutMs?: number; limitName?: string } = {}): Promise<UntrustedTasks[K][1]> {
    if (this.closing) throw new UnavailableError('shutting_down', 'The API is shutting down; retry on another instance.', RETRY_AFTER_SECONDS);
    if (this.inFlight >= this.opts.threads + this.opts.maxQueue) {
      throw new UnavailableError('pool_saturated', `Too many requests are being checked right now (POOL_MAX_QUEUE = ${this.opts.maxQueue}); retry in a moment.`, RETRY_AFTER_SECONDS);
    }
    let outcome: TaskOutcome<UntrustedTasks[K][1]>;
    this.inFlight++;
    try {
      // Starting a thread (loading TensorFlow.js) is the pool's cost, not the request's: the time
      // limit starts once every thread is up.
      await (this.warm ??= this.warmup());
      outcome = await this.piscina.run(input, { name, signal: AbortSignal.timeout(opts.timeoutMs ?? this.opts.taskTimeoutMs) });
    } catch (err) {
      const limit = this.limitError(name, err as Error & { code?: string }, opts.timeoutMs ?? this.opts.taskTimeoutMs, opts.limitName ?? 'POOL_TASK_TIMEOUT_MS');
      // A killed thread is replaced on demand; warm the replacement before the next time limit starts.
      if (limit !== err && !(err instanceof GraftError)) this.warm = null;
      throw limit;
    } finally {
      this.inFlight--;
    }
    if (!outcome.ok) throw rebuildGraftError(outcome.error);
    return outcome.value;
  }

  /** Starts every thread and loads the task module in each, so no request pays for it. */
  async warmup(): Promise<void> {
    try {
      await Promise.all(Array.from({ length: this.opts.threads }, () => this.piscina.run(null, { name: 'warmup', signal: AbortSignal.timeout(WARMUP_TIMEOUT_MS) })));
    } catch (err) {
      this.warm = null;
      this.opts.logger.error({ err }, 'the untrusted-work pool could not start its threads');
      throw new UnavailableError('pool_unavailable', 'The request checker could not start; retry in a moment.', RETRY_AFTER_SECONDS);
    }
  }

  stats(): PoolStats {
    const queued = Math.max(0, this.inFlight - this.opts.threads);
    return {
      threads: this.piscina.threads.length,
      running: this.inFlight - queued,
      queued,
      completed: this.piscina.completed,
      utilization: this.piscina.utilization,
    };
  }

  /** Idempotent. Lets running tasks finish (they are bounded by the time limit). */
  close(): Promise<void> {
    this.closing ??= this.piscina.close({ force: false }).catch(() => this.piscina.destroy());
    return this.closing;
  }

  private limitError(name: string, err: Error & { code?: string }, timeoutMs: number, limitName: string) {
    if (err instanceof GraftError) return err;
    if (err.name === 'AbortError') {
      return new UnprocessableError(
        'time_limit_exceeded',
        `Checking this request (${name}) took longer than ${timeoutMs} ms (${limitName}) and was stopped; simplify the network or the files.`,
        null,
        { limit: limitName, max: timeoutMs },
      );
    }
    if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      return new UnprocessableError(
        'memory_limit_exceeded',
        `Checking this request (${name}) needed more than ${this.opts.maxHeapMb} MB (POOL_TASK_MAX_HEAP_MB) and was stopped; simplify the network or the files.`,
        null,
        { limit: 'POOL_TASK_MAX_HEAP_MB', max: this.opts.maxHeapMb },
      );
    }
    this.opts.logger.error({ err, task: name }, 'untrusted-work task failed unexpectedly');
    return err;
  }
}
