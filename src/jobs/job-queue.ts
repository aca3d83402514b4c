import { Job, Queue, type ConnectionOptions, type JobsOptions, type JobState } from 'bullmq';
import { BullInsertTemplate, type BullInsert } from './bull-insert';

/** Name of the BullMQ job that trains one graft job (the BullMQ job id is graft's job id). */
export const TRAIN_JOB_NAME = 'train';

export interface JobQueueOptions {
  queueName: string;
  connection: ConnectionOptions;
  attempts: number;
  backoffMs: number;
}

/** BullMQ payload: only the id; the spec lives in the job record so there is one copy of it. */
export interface TrainJobData {
  jobId: string;
}

/**
 * The producer side of the queue. Retries are for infrastructure failures (a worker crash, a lost
 * host): the processor turns user errors into UnrecoverableError so they are never retried.
 */
export class JobQueue {
  readonly queue: Queue<TrainJobData>;
  private readonly inserts: BullInsertTemplate<TrainJobData>;
  private closing: Promise<void> | null = null;

  constructor(private readonly opts: JobQueueOptions) {
    this.queue = new Queue<TrainJobData>(opts.queueName, { connection: opts.connection });
    this.inserts = new BullInsertTemplate(this.queue, TRAIN_JOB_NAME, (jobId) => ({ jobId }), (jobId) => this.jobOptions(jobId, 1));
  }

  /**
   * `priority` is the job's fair-scheduling tag (create.lua): lower runs first, FIFO among equal
   * ones. BullMQ keeps it across retries, hand-backs and delays, so a requeued job keeps its place.
   */
  async enqueue(jobId: string, priority: number): Promise<void> {
    await this.queue.add(TRAIN_JOB_NAME, { jobId }, this.jobOptions(jobId, priority));
  }

  /**
   * What enqueue would send, for create.lua to run in the same script as the record (one round
   * trip, never a record without its queue entry). create.lua sets the priority to the job's tag.
   */
  insertFor(jobId: string): BullInsert {
    return this.inserts.for(jobId);
  }

  private jobOptions(jobId: string, priority: number): JobsOptions & { jobId: string; priority: number } {
    return {
      jobId,
      priority,
      attempts: this.opts.attempts,
      backoff: { type: 'exponential', delay: this.opts.backoffMs },
      // graft keeps its own records; BullMQ's entries are only a work log.
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 24 * 3600, count: 5000 },
    };
  }

  async remove(jobId: string): Promise<boolean> {
    const job = await this.queue.getJob(jobId);
    if (!job) return false;
    try {
      await job.remove();
      return true;
    } catch {
      // Locked by a worker (already active): the caller falls back to an active cancel.
      return false;
    }
  }

  /** BullMQ's state of the job ('unknown' when BullMQ no longer has it) and why it failed, if it did. */
  async state(jobId: string): Promise<{ state: JobState | 'unknown'; failedReason: string | null }> {
    const job = await this.queue.getJob(jobId);
    if (!job) return { state: 'unknown', failedReason: null };
    return { state: await job.getState(), failedReason: job.failedReason ?? null };
  }

  /**
   * Hands a job the caller holds (with `token`) back to the waiting list without spending an
   * attempt: BullMQ checks the token, so only the owner of the lock can do it. The processor
   * then throws WaitingError so the worker does not record anything either.
   */
  async handBack(jobId: string, token: string): Promise<boolean> {
    const job = await Job.fromId(this.queue, jobId);
    if (!job) return false;
    try {
      await job.moveToWait(token);
      return true;
    } catch {
      return false; // the lock is gone: another worker owns the job now
    }
  }

  /**
   * Puts a job the caller holds back for `delayMs` without spending an attempt (its tenant is at
   * its concurrency limit): like handBack, only the lock's owner can; the processor then throws
   * DelayedError. Delayed, not waiting, so the worker takes other tenants' jobs meanwhile instead
   * of taking this one again at once; it comes back with its priority, so it keeps its place.
   */
  async putBack(jobId: string, token: string, delayMs: number): Promise<boolean> {
    const job = await Job.fromId(this.queue, jobId);
    if (!job) return false;
    try {
      await job.moveToDelayed(Date.now() + delayMs, token);
      return true;
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    this.closing ??= this.queue.close();
    return this.closing;
  }
}
