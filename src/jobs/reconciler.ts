import { outputOf } from '../spec/schema';
import type { Logger } from 'pino';
import type { DataLayout } from '../storage/layout';
import { jobTenant } from '../tenants/refs';
import type { JobQueue } from './job-queue';
import type { JobStore } from './job-store';
import { readOwnOutput } from './own-output';
import type { Job, JobError } from './types';

/**
 * Brings every unfinished record in line with BullMQ (at worker start, periodically, and when a
 * job fails for good). A crash between two steps of the lifecycle must not leave a record
 * `running` or `queued` forever:
 *   BullMQ failed it            → failed (`worker_crashed`, or `worker_lost` if it stalled out)
 *   BullMQ no longer has it     → requeued (a fresh queue entry), or failed `job_lost` once its
 *                                 attempts are spent; succeeded if its checkpoint was written
 *   BullMQ completed it         → succeeded if its checkpoint exists, else failed `job_lost`
 *   BullMQ took it back (stall) → a `running` record goes back to `queued`, freeing its tenant's
 *                                 concurrency slot until a worker takes it again
 * Every change is guarded by BullMQ's state in the same script, so it never races a live attempt.
 */
export interface ReconcilerOptions {
  store: JobStore;
  queue: JobQueue;
  layout: DataLayout;
  logger: Logger;
  /** Attempts a job may start before a lost queue entry fails it instead of requeueing it. */
  maxAttempts: number;
  /** A record younger than this may be between "recorded" and "enqueued": left alone. */
  graceSeconds: number;
}

export type ReconcileAction = 'none' | 'requeued' | 'failed' | 'succeeded';

export class Reconciler {
  constructor(private readonly opts: ReconcilerOptions) {}

  /** Every queued or running record; returns what was done to each id that needed something. */
  async run(): Promise<Map<string, ReconcileAction>> {
    const done = new Map<string, ReconcileAction>();
    for (const job of await this.opts.store.active()) {
      try {
        const action = await this.reconcile(job);
        if (action !== 'none') done.set(job.id, action);
      } catch (err) {
        this.opts.logger.warn({ err, jobId: job.id }, 'could not reconcile a job');
      }
    }
    return done;
  }

  async reconcileOne(id: string): Promise<ReconcileAction> {
    const job = await this.opts.store.get(id);
    return job ? this.reconcile(job) : 'none';
  }

  private async reconcile(job: Job): Promise<ReconcileAction> {
    if (job.status !== 'queued' && job.status !== 'running') return 'none';
    const { store, queue } = this.opts;
    const output = outputOf(job.spec);
    const { tenant } = job;
    const { state, failedReason } = await queue.state(job.id);

    if (state === 'failed') {
      const stalled = /stalled/i.test(failedReason ?? '');
      const error: JobError = stalled
        ? { code: 'worker_lost', message: `The worker holding the job stopped answering too many times (${failedReason}); the job was given up.`, param: null }
        : { code: 'worker_crashed', message: `The training process died (${failedReason ?? 'no reason recorded'}); the job was given up after ${job.attempts} attempt(s). Try a smaller batchSize or model.`, param: null };
      const r = await store.transition(job.id, { from: ['queued', 'running'], to: 'failed', guard: { bull: 'failed' }, output, tenant, patch: { finishedAt: new Date().toISOString(), error } });
      return this.report(job, r.ok ? 'failed' : 'none', error.code);
    }

    if (state === 'completed') return this.settleOrphan(job, 'none');

    if (state === 'unknown') {
      if (Date.now() - Date.parse(job.createdAt) < this.opts.graceSeconds * 1000) return 'none';
      const written = await readOwnOutput(this.opts.layout.forTenant(jobTenant(job)), output, job.id);
      if (written || job.attempts >= this.opts.maxAttempts) return this.settleOrphan(job, { bull: 'missing' });
      if (job.status === 'running') {
        const r = await store.transition(job.id, {
          from: ['running'],
          to: 'queued',
          guard: { bull: 'missing' },
          output,
          tenant,
          message: 'Requeued: the queue no longer had this job (a crash between two steps); another worker continues it.',
          data: { requeued: true },
        });
        if (!r.ok) return 'none';
      }
      // Adding is idempotent by job id: a racing reconciler adds nothing twice. The job keeps its
      // fair-scheduling tag, so it goes back where it was, not behind every later submission.
      await queue.enqueue(job.id, await store.priorityOf(job.id));
      return this.report(job, 'requeued');
    }

    if (job.status === 'running' && (state === 'waiting' || state === 'prioritized' || state === 'delayed')) {
      // The queue took the job back from an attempt that died (a stalled worker): the record still
      // says running and holds one of its tenant's concurrency slots. Nobody holds the lock, so no
      // attempt is live: queued again, the slot is free until a worker takes it.
      const r = await store.transition(job.id, {
        from: ['running'],
        to: 'queued',
        guard: { bull: 'unlocked' },
        output,
        tenant,
        message: 'Requeued: the worker running it stopped; the queue gave the job back and another worker continues it.',
        data: { requeued: true },
      });
      return this.report(job, r.ok ? 'requeued' : 'none');
    }
    return 'none';
  }

  /** The queue is done with a job whose record is not: its checkpoint decides. */
  private async settleOrphan(job: Job, guard: { bull: 'missing' } | 'none'): Promise<ReconcileAction> {
    const output = outputOf(job.spec);
    const { tenant } = job;
    const written = await readOwnOutput(this.opts.layout.forTenant(tenant), output, job.id);
    const now = new Date().toISOString();
    if (written) {
      const result = { checkpoint: output, backend: written.backend ?? 'unknown', metrics: written.metrics ?? {} };
      const r = await this.opts.store.transition(job.id, { from: ['queued', 'running'], to: 'succeeded', guard, output, tenant, patch: { finishedAt: now, result }, message: 'Job succeeded (its checkpoint was written before the worker could record it).' });
      return this.report(job, r.ok ? 'succeeded' : 'none');
    }
    const error: JobError = { code: 'job_lost', message: `The queue lost this job after ${job.attempts} attempt(s) and it wrote no checkpoint; submit it again.`, param: null };
    const r = await this.opts.store.transition(job.id, { from: ['queued', 'running'], to: 'failed', guard, output, tenant, patch: { finishedAt: now, error } });
    return this.report(job, r.ok ? 'failed' : 'none', error.code);
  }

  private report(job: Job, action: ReconcileAction, code?: string): ReconcileAction {
    if (action !== 'none') this.opts.logger.warn({ jobId: job.id, was: job.status, action, code }, 'reconciled a job with the queue');
    return action;
  }
}
