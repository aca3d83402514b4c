import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ConflictError, GraftError, NotFoundError } from '../errors';
import { preflight, type PreflightReport, type PreflightStorage } from '../spec/preflight';
import { withDefaults, type JobSpec } from '../spec/schema';
import type { JobQueue } from './job-queue';
import type { JobStore, ListOptions } from './job-store';
import type { Job } from './types';

/** Submission and lookup of jobs: the API's side of the job lifecycle. */
export class JobService {
  constructor(
    private readonly deps: { store: JobStore; queue: JobQueue; storage: PreflightStorage; logger: Logger },
  ) {}

  /** Every check a submission gets, without enqueueing anything. */
  plan(spec: JobSpec): Promise<PreflightReport> {
    return preflight(withDefaults(spec), this.deps.storage);
  }

  /**
   * Checks, reserves the output name, records the job, then enqueues it. If enqueueing fails the
   * record and the reservation are rolled back, so a 5xx never leaves a phantom job behind.
   */
  async submit(input: JobSpec): Promise<Job> {
    const spec = withDefaults(input);
    const report = await preflight(spec, this.deps.storage);
    if (report.errors.length > 0) throw pickFirst(report.errors);

    const { store, queue } = this.deps;
    const id = randomUUID();
    if (!(await store.reserveOutput(spec.output.checkpoint, id))) {
      throw new ConflictError('checkpoint_reserved', `Another queued or running job already writes the checkpoint "${spec.output.checkpoint}".`, '/output/checkpoint');
    }
    let job: Job | null = null;
    try {
      job = await store.create(id, spec);
      await queue.enqueue(id);
    } catch (err) {
      if (job) await store.remove(id).catch(() => undefined);
      await store.releaseOutput(spec.output.checkpoint, id).catch(() => undefined);
      throw err;
    }
    this.deps.logger.info({ jobId: id, type: spec.type, output: spec.output.checkpoint }, 'job queued');
    return job;
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
function pickFirst(errors: GraftError[]): GraftError {
  const rank = (e: GraftError) => (e.statusCode === 400 ? 0 : e.statusCode === 422 ? 1 : 2);
  return [...errors].sort((a, b) => rank(a) - rank(b))[0];
}
