import { outputReservationName } from '../tenants/refs';
import { QueueKeys } from 'bullmq';
import { SCRIPT_KEY_COUNT } from './scripts';
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
 *   graft:<q>:output:<name>     the job (or upload) that will write checkpoint <name> of tenant
 *                               `default` (names of other tenants: output:<tenant>/<name>)
 *   graft:<q>:tenant:<t>:jobs   zset: tenant t's jobs by submission sequence (its listing)
 *   graft:<q>:tenant:<t>:jobs:<status>  zset: the same per status (queued + running = its quota use)
 *   graft:<q>:tenant:<t>:quotas hash: an admin's overrides of t's quotas (maxActiveJobs,
 *                               maxConcurrentJobs, maxStorageBytes, uploadsPerMinute; integers)
 *   graft:<q>:fair              hash: fair-scheduling clock: `now` (the virtual time of the last
 *                               started job) and, per tenant, the tag of its last submitted job
 *   graft:<q>:cancel:<id>       set when a cancel was requested; lives until the job ends
 *   graft:<q>:cancel            pub/sub channel: cancel requests to the worker holding a job
 *   graft:<q>:checkpoint-deleted  pub/sub channel: a deleted checkpoint's folder, so every API process evicts its model
 *   graft:<q>:events:<id>       stream: the job's journal; expires with the record
 *   graft:<q>:expiries          zset: finished job ids by the time (ms) their record expires
 *   graft:<q>:tenants-adopted  set once records from before tenants joined tenant `default`
 *   graft:<q>:idempotency:<h>   an Idempotency-Key and the job it created (h hashes tenant and key)
 *   graft:<q>:apikey:<id>       hash: an API key's record (sha256 of the secret, tenant, role, name, dates)
 *   graft:<q>:apikeys           zset: every API key id by creation time (ms)
 *   graft:<q>:apikeys:by-hash   hash: sha256 of an active key's secret → its id (revoking removes the field)
 *   graft:<q>:apikeys:revoked   pub/sub channel: hashes of revoked keys, so every API process forgets them at once
 *   graft:<q>:audit             stream: the audit log, trimmed by MINID to JOB_RETENTION_SECONDS
 *   graft:<q>:ratelimit:<key>   @fastify/rate-limit counters, one per API key (or IP) and window
 *   graft:<q>:tenant:<t>:uploads:<minute>  uploads the tenant started in that minute (expires)
 *   graft:<q>:tenant:<t>:storage:holds       hash: upload id → "<bytes>:<expiry ms>", bytes granted to
 *                               uploads not yet installed (src/tenants/storage-holds.ts)
 *   graft:<q>:tenant:<t>:storage:generation  counter: moved by every upload's release
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

  /** Tenant `default` keeps the key it had before tenants, so reservations survive the upgrade (outputReservationName). */
  output(tenant: string, name: string): string {
    return `${this.prefix}:output:${outputReservationName(tenant, name)}`;
  }

  tenantJobs(tenant: string): string {
    return `${this.prefix}:tenant:${tenant}:jobs`;
  }

  tenantByStatus(tenant: string, status: JobStatus): string {
    return `${this.prefix}:tenant:${tenant}:jobs:${status}`;
  }

  /** Per-tenant quota overrides (src/tenants/job-limits.ts reads it; create.lua and start.lua too). */
  tenantQuotas(tenant: string): string {
    return `${this.prefix}:tenant:${tenant}:quotas`;
  }

  /** Set once every record written before tenants has joined the default tenant (JobStore.adoptUntenanted). */
  get tenantsAdopted(): string {
    return `${this.prefix}:tenants-adopted`;
  }

  get fair(): string {
    return `${this.prefix}:fair`;
  }

  cancel(id: string): string {
    return `${this.prefix}:cancel:${id}`;
  }

  get checkpointDeletedChannel(): string {
    return `${this.prefix}:checkpoint-deleted`;
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

  apiKey(id: string): string {
    return `${this.prefix}:apikey:${id}`;
  }

  get apiKeys(): string {
    return `${this.prefix}:apikeys`;
  }

  get apiKeysByHash(): string {
    return `${this.prefix}:apikeys:by-hash`;
  }

  get apiKeyRevocations(): string {
    return `${this.prefix}:apikeys:revoked`;
  }

  get audit(): string {
    return `${this.prefix}:audit`;
  }

  /** Prefix of the rate-limit counters (the plugin appends the key id or IP). */
  get rateLimitPrefix(): string {
    return `${this.prefix}:ratelimit:`;
  }

  /** Uploads `tenant` started in the minute `minute` (ms since the epoch / 60000): a fixed-window counter. */
  tenantUploads(tenant: string, minute: number): string {
    return `${this.prefix}:tenant:${tenant}:uploads:${minute}`;
  }

  /** Bytes granted to `tenant`'s uploads in flight (StorageHolds). */
  tenantStorageHolds(tenant: string): string {
    return `${this.prefix}:tenant:${tenant}:storage:holds`;
  }

  /** Moved by every release of a hold, so a grant can tell that its measurement is stale (StorageHolds). */
  tenantStorageGeneration(tenant: string): string {
    return `${this.prefix}:tenant:${tenant}:storage:generation`;
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
   * `tenant` is the job's owner (its per-tenant indexes and quota record).
   */
  scriptKeys(id: string, output: string, tenant: string): string[] {
    return [
      this.job(id),
      this.allJobs,
      ...JOB_STATUSES.map((s) => this.byStatus(s)),
      this.cancel(id),
      this.events(id),
      this.output(tenant, output),
      this.bullLock(id),
      this.expiries,
      this.bullJob(id),
      this.bullState('failed'),
      this.seq,
      this.tenantJobs(tenant),
      ...JOB_STATUSES.map((s) => this.tenantByStatus(tenant, s)),
      this.tenantQuotas(tenant),
      this.fair,
    ];
  }

  /**
   * scriptKeys as create.lua reads them: the same places, with the keys it never touches (the
   * finished-status indexes, cancel flag, journal, lock, expiries, BullMQ job and failed set) sent
   * empty. A submission is the hot path; this makes its command a third shorter.
   */
  createKeys(id: string, output: string, tenant: string): string[] {
    const keys = new Array<string>(SCRIPT_KEY_COUNT).fill('');
    keys[0] = this.job(id);
    keys[1] = this.allJobs;
    keys[2] = this.byStatus('queued');
    keys[3] = this.byStatus('running');
    keys[9] = this.output(tenant, output);
    keys[14] = this.seq;
    keys[15] = this.tenantJobs(tenant);
    keys[16] = this.tenantByStatus(tenant, 'queued');
    keys[17] = this.tenantByStatus(tenant, 'running');
    keys[21] = this.tenantQuotas(tenant);
    keys[22] = this.fair;
    return keys;
  }
}
