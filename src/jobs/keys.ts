import { QueueKeys } from 'bullmq';
import { JOB_STATUSES, type JobStatus } from './types';

/**
 * Every Redis key graft uses, in one place (docs/ARCHITECTURE.md lists them and what owns each).
 * graft's own keys live under `graft:<queue>`; BullMQ's under its own prefix (`bull:<queue>`),
 * named here through BullMQ's QueueKeys so the scripts that fence on a job's lock read the same
 * key BullMQ writes.
 *
 *   graft:<q>:job:<id>          hash: the job record (status, spec, progress, result, error…)
 *   graft:<q>:jobs              zset: every job by submission sequence (newest = highest)
 *   graft:<q>:jobs:<status>     zset: one per status, same scores, for filtered listing
 *   graft:<q>:seq               submission counter
 *   graft:<q>:output:<name>     the job (or upload) that will write checkpoint <name>
 *   graft:<q>:cancel:<id>       set when a cancel was requested; lives until the job ends
 *   graft:<q>:cancel            pub/sub channel: cancel requests to the worker holding a job
 *   graft:<q>:events:<id>       stream: the job's journal; expires with the record
 *   graft:<q>:expiries          zset: finished job ids by the time (ms) their record expires
 *   graft:<q>:idempotency:<h>   an Idempotency-Key and the job it created
 *   graft:<q>:tenant:<t>:quotas hash: an admin's per-tenant quota overrides (src/tenants/quotas.ts)
 *   graft:<q>:tenant:<t>:uploads:<minute>  uploads the tenant started in that minute (expires)
 */
export class JobKeys {
  readonly prefix: string;
  private readonly bull: QueueKeys;

  constructor(
    readonly queueName: string,
    bullPrefix = 'bull',
  ) {
    this.prefix = `graft:${queueName}`;
    this.bull = new QueueKeys(bullPrefix);
  }

  /** What a job id is prefixed with to name its record (scripts build a holder's key from it). */
  get jobPrefix(): string {
    return `${this.prefix}:job:`;
  }

  job(id: string): string {
    return `${this.jobPrefix}${id}`;
  }

  get allJobs(): string {
    return `${this.prefix}:jobs`;
  }

  byStatus(status: JobStatus): string {
    return `${this.prefix}:jobs:${status}`;
  }

  get seq(): string {
    return `${this.prefix}:seq`;
  }

  output(name: string): string {
    return `${this.prefix}:output:${name}`;
  }

  cancel(id: string): string {
    return `${this.prefix}:cancel:${id}`;
  }

  get cancelChannel(): string {
    return `${this.prefix}:cancel`;
  }

  events(id: string): string {
    return `${this.prefix}:events:${id}`;
  }

  get expiries(): string {
    return `${this.prefix}:expiries`;
  }

  idempotency(hash: string): string {
    return `${this.prefix}:idempotency:${hash}`;
  }

  /** An admin's quota overrides of a tenant (field → integer); absent fields take the config defaults. */
  tenantQuotas(tenant: string): string {
    return `${this.prefix}:tenant:${tenant}:quotas`;
  }

  /** Uploads `tenant` started in the minute `minute` (ms since the epoch / 60000): a fixed-window counter. */
  tenantUploads(tenant: string, minute: number): string {
    return `${this.prefix}:tenant:${tenant}:uploads:${minute}`;
  }

  /** BullMQ's hash for the job (exists while BullMQ keeps the job). */
  bullJob(id: string): string {
    return this.bull.toKey(this.queueName, id);
  }

  /** BullMQ's lock of the job: holds the token of the worker that owns the current attempt. */
  bullLock(id: string): string {
    return `${this.bullJob(id)}:lock`;
  }

  bullState(state: 'failed' | 'completed'): string {
    return this.bull.toKey(this.queueName, state);
  }

  /**
   * The keys every job script receives, in this order (src/jobs/lua/lib.lua names them).
   * `output` is the checkpoint name the job reserves; '' when unknown (no reservation key).
   */
  scriptKeys(id: string, output: string): string[] {
    return [
      this.job(id),
      this.allJobs,
      ...JOB_STATUSES.map((s) => this.byStatus(s)),
      this.cancel(id),
      this.events(id),
      this.output(output),
      this.bullLock(id),
      this.expiries,
      this.bullJob(id),
      this.bullState('failed'),
      this.seq,
    ];
  }
}
