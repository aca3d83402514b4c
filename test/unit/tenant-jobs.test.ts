import { Redis } from 'ioredis';
import pino from 'pino';
import { JobQueue } from '../../src/jobs/job-queue';
import { JobStore } from '../../src/jobs/job-store';
import { Reconciler } from '../../src/jobs/reconciler';
import { withDefaults, type JobSpec } from '../../src/spec/schema';
import { DataLayout } from '../../src/storage/layout';
import { JobLimits } from '../../src/tenants/job-limits';
import { deleteQueueKeys, makeTempDir, TEST_REDIS_URL, uniqueQueueName } from '../helpers/env';

/**
 * Tenancy in the job scripts against a real Redis (and BullMQ where the queue matters): per-tenant
 * reservations, the job quota and the concurrency limit counted in the same step as they change,
 * admin overrides read from the tenant's quota record, fair-scheduling tags, the adoption of
 * records from before tenants, and the reconciler freeing the slot of a crashed attempt.
 */
const spec = (output: string): JobSpec =>
  withDefaults({ type: 'pretrain', model: { architecture: 'conv-classifier' }, dataset: { name: 'digits' }, output: { checkpoint: output } } as JobSpec);
const UNLIMITED = { maxActiveJobs: 0, maxConcurrentJobs: 0 };

describe('jobs of tenants in the job scripts', () => {
  let redis: Redis;
  let store: JobStore;
  let queueName: string;

  beforeEach(() => {
    queueName = uniqueQueueName('tenants');
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    store = new JobStore(redis, queueName, 60);
  });

  afterEach(async () => {
    await redis.quit();
    await deleteQueueKeys(queueName);
  });

  const lock = (id: string, token: string) => redis.set(store.keys.bullLock(id), token);
  const created = async (id: string, tenant: string, output = id, limits = UNLIMITED) => {
    const outcome = await store.create(id, spec(output), tenant, limits);
    if (!('created' in outcome)) throw new Error(`${id} refused: ${JSON.stringify(outcome)}`);
    return outcome;
  };

  it('two tenants may both write "mnist-ft"; within one tenant the name is reserved', async () => {
    await created('a1', 'acme', 'mnist-ft');
    await created('b1', 'beta', 'mnist-ft');
    expect(await store.create('a2', spec('mnist-ft'), 'acme', UNLIMITED)).toEqual({ reserved: true });
    expect(await store.outputHolder('acme', 'mnist-ft')).toBe('a1');
    expect(await store.outputHolder('beta', 'mnist-ft')).toBe('b1');
    // The default tenant keeps the key it had before tenants.
    expect(store.keys.output('default', 'x')).toBe(`graft:${queueName}:output:x`);
    expect(await store.cancel('a1', 'mnist-ft', 'acme')).toBe('cancelled');
    expect(await store.outputHolder('acme', 'mnist-ft')).toBeNull();
    expect(await store.outputHolder('beta', 'mnist-ft')).toBe('b1');
    // Listing and the in-use scan are per tenant.
    expect((await store.list({ tenant: 'beta', limit: 10 })).jobs.map((j) => j.id)).toEqual(['b1']);
    expect((await store.list({ tenant: 'acme', status: 'cancelled', limit: 10 })).jobs.map((j) => [j.id, j.tenant])).toEqual([['a1', 'acme']]);
    expect((await store.list({ limit: 10 })).jobs.map((j) => j.id)).toEqual(['b1', 'a1']);
    expect((await store.active('acme')).length).toBe(0);
    expect((await store.active('beta')).map((j) => j.id)).toEqual(['b1']);
  });

  it('the job quota counts queued + running jobs of the tenant; an admin override in the quota record wins', async () => {
    const limits = { maxActiveJobs: 2, maxConcurrentJobs: 0 };
    await created('q1', 'acme', 'q1', limits);
    await created('q2', 'acme', 'q2', limits);
    expect(await store.create('q3', spec('q3'), 'acme', limits)).toEqual({ quota: { used: 2, limit: 2 } });
    expect(await redis.exists(store.keys.job('q3'))).toBe(0);
    await created('other', 'beta', 'other', limits); // another tenant's budget
    // Running still counts; ending frees a place.
    await lock('q1', 't');
    expect(await store.start('q1', 'q1', 'acme', 't', 'w', limits)).toBe('running');
    expect(await store.create('q3', spec('q3'), 'acme', limits)).toEqual({ quota: { used: 2, limit: 2 } });
    await store.transition('q1', { from: ['running'], to: 'succeeded', guard: { token: 't' }, output: 'q1', tenant: 'acme' });
    await created('q3', 'acme', 'q3', limits);
    // The admin raises acme's quota to 4 and lowers beta's to 1 (0 = unlimited).
    await redis.hset(store.keys.tenantQuotas('acme'), 'maxActiveJobs', 4);
    await redis.hset(store.keys.tenantQuotas('beta'), 'maxActiveJobs', 1);
    await created('q4', 'acme', 'q4', limits);
    await created('q5', 'acme', 'q5', limits);
    expect(await store.create('q6', spec('q6'), 'acme', limits)).toEqual({ quota: { used: 4, limit: 4 } });
    expect(await store.create('b2', spec('b2'), 'beta', limits)).toEqual({ quota: { used: 1, limit: 1 } });
    await redis.hset(store.keys.tenantQuotas('acme'), 'maxActiveJobs', 0);
    await created('q6', 'acme', 'q6', limits);
    const jobLimits = new JobLimits(redis, store.keys, { maxActiveJobs: 2, maxConcurrentJobs: 3 });
    expect(await jobLimits.forTenant('beta')).toEqual({ maxActiveJobs: 1, maxConcurrentJobs: 3 });
    expect(await jobLimits.forTenant('nobody')).toEqual({ maxActiveJobs: 2, maxConcurrentJobs: 3 });
  });

  it('the concurrency limit: a job of a tenant at its limit is throttled (not started); a crashed attempt of the same job keeps its own slot', async () => {
    const limits = { maxActiveJobs: 0, maxConcurrentJobs: 1 };
    for (const id of ['c1', 'c2', 'd1']) await created(id, id.startsWith('c') ? 'acme' : 'beta');
    for (const id of ['c1', 'c2', 'd1']) await lock(id, 't');
    expect(await store.start('c1', 'c1', 'acme', 't', 'w', limits)).toBe('running');
    expect(await store.start('c2', 'c2', 'acme', 't', 'w', limits)).toBe('throttled');
    expect(await store.get('c2')).toMatchObject({ status: 'queued', attempts: 0 });
    // The journal says why, once however often the job is retaken.
    expect(await store.start('c2', 'c2', 'acme', 't', 'w', limits)).toBe('throttled');
    const notices = (await store.events.list('c2', { limit: 100 }, (await store.get('c2'))!.createdAt)).filter((e) => e.data && 'throttled' in e.data);
    expect(notices.map((e) => e.data)).toEqual([{ throttled: { running: 1, limit: 1 } }]);
    expect(await store.start('d1', 'd1', 'beta', 't', 'w', limits)).toBe('running');
    // c1's worker died and the queue gave it to another worker: it may start again.
    expect(await store.start('c1', 'c1', 'acme', 't', 'w', limits)).toBe('running');
    // An override of 2 lets c2 run beside c1.
    await redis.hset(store.keys.tenantQuotas('acme'), 'maxConcurrentJobs', 2);
    expect(await store.start('c2', 'c2', 'acme', 't', 'w', limits)).toBe('running');
    await redis.hdel(store.keys.tenantQuotas('acme'), 'maxConcurrentJobs');
    // Every way out of running frees the slot: here a hand-back to the queue.
    await store.transition('c1', { from: ['running'], to: 'queued', guard: { token: 't' }, output: 'c1', tenant: 'acme' });
    await store.transition('c2', { from: ['running'], to: 'failed', guard: { token: 't' }, output: 'c2', tenant: 'acme' });
    expect(await store.start('c1', 'c1', 'acme', 't', 'w', limits)).toBe('running');
  });

  it('fair-scheduling tags: a tenant with a backlog is behind a tenant that just arrived', async () => {
    const tags: Record<string, number> = {};
    for (let i = 1; i <= 5; i++) tags[`a${i}`] = (await created(`a${i}`, 'acme')).priority;
    expect(Object.values(tags)).toEqual([1, 2, 3, 4, 5]);
    tags.b1 = (await created('b1', 'beta')).priority;
    expect(tags.b1).toBe(1); // ties with acme's first: FIFO puts it right after
    await lock('a1', 't');
    await store.start('a1', 'a1', 'acme', 't', 'w', UNLIMITED); // the clock moves to 1
    tags.c1 = (await created('c1', 'gamma')).priority;
    tags.b2 = (await created('b2', 'beta')).priority;
    expect([tags.c1, tags.b2]).toEqual([2, 2]);
    expect(await store.priorityOf('c1')).toBe(2);
    // Once nothing is queued or running, the clock starts over.
    for (const id of ['a1', 'a2', 'a3', 'a4', 'a5', 'b1', 'c1', 'b2']) {
      const job = (await store.get(id))!;
      await store.transition(id, { from: ['queued', 'running'], to: 'cancelled', guard: 'none', output: id, tenant: job.tenant });
    }
    expect((await created('a6', 'acme')).priority).toBe(1);
  });

  it('records from before tenants join the default tenant, once', async () => {
    await created('old1', 'default');
    await created('old2', 'default');
    await store.cancel('old2', 'old2', 'default');
    // As a record written before tenants: no tenant field, in no tenant index.
    for (const id of ['old1', 'old2']) await redis.hdel(store.keys.job(id), 'tenant');
    await redis.del(store.keys.tenantJobs('default'), store.keys.tenantByStatus('default', 'queued'), store.keys.tenantByStatus('default', 'cancelled'));
    expect((await store.get('old1'))?.tenant).toBe('default');
    expect((await store.list({ tenant: 'default', limit: 10 })).jobs).toEqual([]);
    expect(await store.adoptUntenanted(1)).toBe(2);
    expect((await store.list({ tenant: 'default', limit: 10 })).jobs.map((j) => j.id)).toEqual(['old2', 'old1']);
    expect((await store.active('default')).map((j) => j.id)).toEqual(['old1']);
    expect(await store.adoptUntenanted()).toBe(0);
  });

  it('the expiry index names the tenant, so the sweeper forgets a tenant\'s job from its indexes', async () => {
    await created('e1', 'acme');
    await store.cancel('e1', 'e1', 'acme');
    const [expired] = await store.expiredBy(Date.now() + 120_000, 10);
    expect(expired).toEqual({ id: 'e1', tenant: 'acme', member: 'acme/e1' });
    await redis.del(store.keys.job('e1'));
    expect(await store.forget(expired)).toBe(true);
    expect(await redis.zscore(store.keys.tenantJobs('acme'), 'e1')).toBeNull();
    expect(await redis.zscore(store.keys.tenantByStatus('acme', 'cancelled'), 'e1')).toBeNull();
    expect(await redis.zcard(store.keys.expiries)).toBe(0);
  });

  it('the reconciler frees the slot of a crashed attempt once BullMQ has taken the job back', async () => {
    const queue = new JobQueue({ queueName, connection: redis, attempts: 2, backoffMs: 10 });
    try {
      const reconciler = new Reconciler({ store, queue, layout: new DataLayout(await makeTempDir()), logger: pino({ level: 'silent' }), maxAttempts: 2, graceSeconds: 0 });
      const { priority } = await created('s1', 'acme');
      await queue.enqueue('s1', priority);
      await lock('s1', 't');
      expect(await store.start('s1', 's1', 'acme', 't', 'w', UNLIMITED)).toBe('running');
      // Still locked (a live attempt, as far as anyone can tell): left alone.
      expect(await reconciler.reconcileOne('s1')).toBe('none');
      await redis.del(store.keys.bullLock('s1')); // the worker died; BullMQ's entry waits again
      expect(await queue.queue.getJobState('s1')).toBe('prioritized');
      expect(await reconciler.reconcileOne('s1')).toBe('requeued');
      expect(await store.get('s1')).toMatchObject({ status: 'queued', attempts: 1 });
      expect(await redis.zcard(store.keys.tenantByStatus('acme', 'running'))).toBe(0);
    } finally {
      await queue.close();
    }
  });
});
