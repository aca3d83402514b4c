import { UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pino from 'pino';
import { JobQueue } from '../../src/jobs/job-queue';
import { JobStore } from '../../src/jobs/job-store';
import { Reconciler } from '../../src/jobs/reconciler';
import { withDefaults, type JobSpec } from '../../src/spec/schema';
import { DataLayout } from '../../src/storage/layout';
import { deleteQueueKeys, makeTempDir, TEST_REDIS_URL, uniqueQueueName, waitFor } from '../helpers/env';

/**
 * The job scripts against a real Redis: reservations, fencing on the lock token, cancel as state,
 * retention bookkeeping, and the reconciler against a real BullMQ queue. A BullMQ lock is its key
 * holding the worker's token; tests that need one without a worker write that key.
 */
const T = 'default';
const UNLIMITED = { maxActiveJobs: 0, maxConcurrentJobs: 0 };
const spec = (output: string): JobSpec =>
  withDefaults({ type: 'pretrain', model: { architecture: 'conv-classifier' }, dataset: { name: 'digits' }, output: { checkpoint: output } } as JobSpec);

/** Creates a job of tenant T without quota: the record, or null when create.lua refused it. */
async function create(store: JobStore, id: string, s: JobSpec, tenant = T) {
  const outcome = await store.create(id, s, tenant, UNLIMITED);
  return 'created' in outcome ? outcome.created : null;
}

describe('job scripts', () => {
  let redis: Redis;
  let store: JobStore;
  let queueName: string;

  beforeEach(() => {
    queueName = uniqueQueueName('scripts');
    redis = new Redis(TEST_REDIS_URL);
    store = new JobStore(redis, queueName, 60);
  });

  afterEach(async () => {
    await redis.quit();
    await deleteQueueKeys(queueName);
  });

  const lock = (id: string, token: string) => redis.set(store.keys.bullLock(id), token);

  it('one output name, one unfinished job: the reservation and the record are created together', async () => {
    expect(await create(store, 'a', spec('out'))).not.toBeNull();
    expect(await create(store, 'b', spec('out'))).toBeNull();
    expect(await redis.exists(store.keys.job('b'))).toBe(0);
    expect(await store.outputHolder(T, 'out')).toBe('a');
    // Once the holder ends, the name is free again, and its release happened in the same step.
    expect(await store.cancel('a', 'out', T)).toBe('cancelled');
    expect(await store.outputHolder(T, 'out')).toBeNull();
    expect(await create(store, 'b', spec('out'))).not.toBeNull();
    // A stale reservation (its holder's record is gone) is taken over.
    await redis.set(store.keys.output(T, 'stale'), 'ghost');
    expect(await create(store, 'c', spec('stale'))).not.toBeNull();
    // An upload holding a name keeps it.
    expect(await store.holdForUpload(T, 'up', 'u1', 30)).toBe(true);
    expect(await create(store, 'd', spec('up'))).toBeNull();
    await store.releaseUploadHold(T, 'up', 'u1');
    expect(await create(store, 'd', spec('up'))).not.toBeNull();
    expect(await store.holdForUpload(T, 'up', 'u2', 30)).toBe(false);
  });

  it('writes that end a job are fenced on the lock token', async () => {
    await create(store, 'j', spec('fenced'));
    await lock('j', 'tok-1');
    expect(await store.start('j', 'fenced', T, 'tok-2', 'w', UNLIMITED)).toBe('lost');
    expect(await store.start('j', 'fenced', T, 'tok-1', 'w', UNLIMITED)).toBe('running');
    // Another worker takes the job over (the first one's lock expired).
    await lock('j', 'tok-2');
    expect(await store.poll('j', 'tok-1')).toBe('lost');
    expect(await store.setProgress('j', 'tok-1', { epoch: 1, epochs: 1, batch: 1, batches: 1, loss: 1, accuracy: null, valLoss: null, valAccuracy: null })).toBe(false);
    expect(await store.claimCommit('j', 'fenced', 'tok-1')).toBe('lost');
    const loser = await store.transition('j', { from: ['running'], to: 'failed', guard: { token: 'tok-1' }, output: 'fenced', tenant: T, patch: { error: { code: 'x', message: 'x', param: null } } });
    expect(loser).toMatchObject({ ok: false, refused: 'guard' });
    expect((await store.get('j'))?.status).toBe('running');
    const winner = await store.transition('j', { from: ['running'], to: 'succeeded', guard: { token: 'tok-2' }, output: 'fenced', tenant: T });
    expect(winner.ok).toBe(true);
    expect(await store.outputHolder(T, 'fenced')).toBeNull();
    expect(await redis.ttl(store.keys.job('j'))).toBeGreaterThan(0);
    expect(await redis.ttl(store.keys.events('j'))).toBeGreaterThan(0);
    expect(await redis.zscore(store.keys.expiries, 'j')).not.toBeNull();
  });

  it('cancel is state: a pending cancel ends the job at its start; once the output is claimed it cannot be cancelled', async () => {
    await create(store, 'c1', spec('c1'));
    await lock('c1', 't');
    expect(await store.start('c1', 'c1', T, 't', 'w', UNLIMITED)).toBe('running');
    expect(await store.cancel('c1', 'c1', T)).toBe('requested');
    expect(await store.poll('c1', 't')).toBe('cancelled');
    expect(await store.claimCommit('c1', 'c1', 't')).toBe('cancelled');
    // The attempt died; the retry finds the flag when it starts.
    expect(await store.start('c1', 'c1', T, 't', 'w', UNLIMITED)).toBe('cancelled');
    expect((await store.get('c1'))?.status).toBe('cancelled');
    expect(await redis.exists(store.keys.cancel('c1'))).toBe(0);

    await create(store, 'c2', spec('c2'));
    await lock('c2', 't');
    await store.start('c2', 'c2', T, 't', 'w', UNLIMITED);
    expect(await store.claimCommit('c2', 'c2', 't')).toBe('ok');
    expect(await store.cancel('c2', 'c2', T)).toBe('finishing');
    expect(await store.isCancelRequested('c2')).toBe(false);
  });

  it('an event is never appended to a job that is gone, and lives as long as its record', async () => {
    expect(await store.events.append('nobody', { message: 'hello' })).toBeNull();
    expect(await redis.exists(store.keys.events('nobody'))).toBe(0);
    await create(store, 'e', spec('e'));
    await store.cancel('e', 'e', T);
    await store.events.append('e', { message: 'after the end' });
    expect(await redis.ttl(store.keys.events('e'))).toBeGreaterThan(0);
    // Forgetting a job needs its record to be gone.
    expect(await store.forget({ id: 'e', tenant: T, member: 'e' })).toBe(false);
    await redis.del(store.keys.job('e'));
    expect(await store.forget({ id: 'e', tenant: T, member: 'e' })).toBe(true);
    for (const key of [store.keys.events('e')]) expect(await redis.exists(key)).toBe(0);
    expect(await redis.zscore(store.keys.allJobs, 'e')).toBeNull();
    expect(await redis.zscore(store.keys.byStatus('cancelled'), 'e')).toBeNull();
  });
});

describe('the reconciler, against a real BullMQ queue', () => {
  let redis: Redis;
  let store: JobStore;
  let queue: JobQueue;
  let queueName: string;
  let reconciler: Reconciler;

  beforeEach(async () => {
    queueName = uniqueQueueName('reconcile');
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    store = new JobStore(redis, queueName, 60);
    queue = new JobQueue({ queueName, connection: redis, attempts: 2, backoffMs: 10 });
    const layout = new DataLayout(await makeTempDir());
    reconciler = new Reconciler({ store, queue, layout, logger: pino({ level: 'silent' }), maxAttempts: 2, graceSeconds: 0 });
  });

  afterEach(async () => {
    await queue.close();
    await redis.quit();
    await deleteQueueKeys(queueName);
  });

  it('running without a queue entry → requeued (a fresh entry); queued without one → enqueued', async () => {
    await create(store, 'r1', spec('r1'));
    await lock('r1', 't');
    expect(await store.start('r1', 'r1', T, 't', 'w', UNLIMITED)).toBe('running');
    await redis.del(store.keys.bullLock('r1'));
    await create(store, 'q1', spec('q1'));
    const done = await reconciler.run();
    expect(Object.fromEntries(done)).toEqual({ r1: 'requeued', q1: 'requeued' });
    expect((await store.get('r1'))?.status).toBe('queued');
    expect(await queue.queue.getJobState('r1')).toBe('prioritized');
    expect(await queue.queue.getJobState('q1')).toBe('prioritized');
    // Nothing more to do the second time.
    expect((await reconciler.run()).size).toBe(0);
  });

  it('a job BullMQ failed for good → failed with worker_crashed; out of attempts without an entry → job_lost', async () => {
    await create(store, 'f1', spec('f1'));
    await queue.enqueue('f1', 1);
    const worker = new Worker(queueName, async (job, token) => {
      await store.start(job.id!, 'f1', T, token!, 'w', UNLIMITED);
      throw new UnrecoverableError('Unexpected exit code: null signal: SIGKILL');
    }, { connection: new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null }) });
    try {
      await waitFor(async () => (await queue.queue.getJobState('f1')) === 'failed', 10_000, 'BullMQ to fail the job');
    } finally {
      await worker.close();
      await (worker.opts.connection as Redis).quit();
    }
    expect((await store.get('f1'))?.status).toBe('running');
    expect(await reconciler.reconcileOne('f1')).toBe('failed');
    expect(await store.get('f1')).toMatchObject({ status: 'failed', error: { code: 'worker_crashed' } });
    expect(await store.outputHolder(T, 'f1')).toBeNull();

    await create(store, 'l1', spec('l1'));
    await redis.hset(store.keys.job('l1'), 'attempts', 2);
    expect(await reconciler.reconcileOne('l1')).toBe('failed');
    expect(await store.get('l1')).toMatchObject({ status: 'failed', error: { code: 'job_lost' } });
  });

  const lock = (id: string, token: string) => redis.set(store.keys.bullLock(id), token);
});
