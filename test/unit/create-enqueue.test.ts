import { Worker, type Job as BullJob } from 'bullmq';
import { Redis } from 'ioredis';
import { BullInsertTemplate, captureBullInsert } from '../../src/jobs/bull-insert';
import { JobQueue, TRAIN_JOB_NAME, type TrainJobData } from '../../src/jobs/job-queue';
import { QUEUED_EVENT_ID } from '../../src/jobs/job-events';
import { jobJson, JobStore } from '../../src/jobs/job-store';
import { withDefaults, type JobSpec } from '../../src/spec/schema';
import { deleteQueueKeys, TEST_REDIS_URL, uniqueQueueName, waitFor } from '../helpers/env';

/**
 * create.lua runs BullMQ's own insert in the same script as graft's record (src/jobs/bull-insert.ts).
 * Against a real Redis and real BullMQ: the queue entry is the one Queue.add would have made, with
 * the fair-scheduling tag as its priority; a BullMQ worker takes such jobs in tag order; a refused
 * submission leaves neither a record nor a queue entry; the journal's first event is not stored.
 */
const spec = (output: string): JobSpec =>
  withDefaults({ type: 'pretrain', model: { architecture: 'conv-classifier' }, dataset: { name: 'digits' }, output: { checkpoint: output } } as JobSpec);
const UNLIMITED = { maxActiveJobs: 0 };

describe('create.lua enqueues with BullMQ in the same step', () => {
  let redis: Redis;
  let store: JobStore;
  let queue: JobQueue;
  let queueName: string;

  beforeEach(() => {
    queueName = uniqueQueueName('create-enqueue');
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    store = new JobStore(redis, queueName, 60);
    queue = new JobQueue({ queueName, connection: redis, attempts: 3, backoffMs: 25 });
  });

  afterEach(async () => {
    await queue.close();
    await redis.quit();
    await deleteQueueKeys(queueName);
  });

  const submit = (id: string, tenant: string, output = id, limits = UNLIMITED) => store.create(id, spec(output), tenant, limits, undefined, queue.insertFor(id));

  it('makes the entry Queue.add would make, with the tag as its priority', async () => {
    const outcome = await submit('j1', 'acme');
    expect(outcome).toMatchObject({ created: { id: 'j1', status: 'queued' }, priority: 1 });
    const entry = await queue.queue.getJob('j1');
    expect(entry).toBeDefined();
    expect(entry!.name).toBe(TRAIN_JOB_NAME);
    expect(entry!.data).toEqual({ jobId: 'j1' });
    expect(entry!.opts).toMatchObject({ priority: 1, attempts: 3, backoff: { type: 'exponential', delay: 25 }, removeOnComplete: { age: 3600, count: 1000 } });
    expect(await queue.queue.getJobState('j1')).toBe('prioritized');

    // The same job added by Queue.add, for comparison: the same fields, but for the ones that name it or its time.
    await queue.enqueue('ref', 1);
    const reference = await redis.hgetall(`bull:${queueName}:ref`);
    const ours = await redis.hgetall(`bull:${queueName}:j1`);
    expect(Object.keys(ours).sort()).toEqual(Object.keys(reference).sort());
    expect({ ...JSON.parse(ours.opts), jobId: 'ref' }).toEqual(JSON.parse(reference.opts));
    expect(ours.priority).toBe(reference.priority);
    for (const field of ['name', 'data', 'delay', 'atm', 'ats']) if (field in reference) expect(field === 'data' ? JSON.parse(ours[field]) : ours[field]).toEqual(field === 'data' ? { jobId: 'j1' } : reference[field]);
    expect(ours.timestamp).toMatch(/^\d+$/);
    expect(Math.abs(Number(ours.timestamp) - Number(reference.timestamp))).toBeLessThan(60_000);
  });

  it('a BullMQ worker takes the jobs in fair-scheduling order', async () => {
    // acme queues three before beta's one: beta's tag (2) goes ahead of acme's third (3).
    const tags: Record<string, number> = {};
    for (const [id, tenant] of [['a1', 'acme'], ['a2', 'acme'], ['a3', 'acme'], ['b1', 'beta']] as const) {
      const outcome = await submit(id, tenant);
      if (!('created' in outcome)) throw new Error(`${id} refused`);
      tags[id] = outcome.priority;
    }
    expect(tags).toEqual({ a1: 1, a2: 2, a3: 3, b1: 1 });
    for (const id of Object.keys(tags)) expect((await queue.queue.getJob(id))!.opts.priority).toBe(tags[id]);

    const order: string[] = [];
    const connection = redis.duplicate();
    const worker = new Worker<TrainJobData>(queueName, async (job: BullJob<TrainJobData>) => void order.push(job.data.jobId), { connection, concurrency: 1 });
    try {
      await waitFor(async () => order.length === 4, 10_000, 'the worker to take all four jobs');
      expect(order).toEqual(['a1', 'b1', 'a2', 'a3']);
    } finally {
      await worker.close();
      await connection.quit();
    }
  });

  it('a refused submission leaves neither a record nor a queue entry', async () => {
    await submit('r1', 'acme', 'shared');
    expect(await submit('r2', 'acme', 'shared')).toEqual({ reserved: true });
    expect(await submit('q2', 'beta', 'q2', { maxActiveJobs: 1 })).toHaveProperty('created');
    expect(await submit('q3', 'beta', 'q3', { maxActiveJobs: 1 })).toEqual({ quota: { used: 1, limit: 1 } });
    for (const id of ['r2', 'q3']) {
      expect(await store.get(id)).toBeNull();
      expect(await queue.queue.getJob(id)).toBeUndefined();
    }
    expect(await queue.queue.getJobCounts('prioritized')).toEqual({ prioritized: 2 });
  });

  it("a created job's JSON reuses the spec JSON create.lua stored, and is exactly JSON.stringify's", async () => {
    const outcome = await submit('json-1', 'acme', 'a "quoted" \\ name');
    if (!('created' in outcome)) throw new Error('not created');
    const job = outcome.created;
    expect(jobJson(job)).toBe(JSON.stringify(job));
    expect(JSON.parse((await redis.hget(store.keys.job('json-1'), 'spec'))!)).toEqual(job.spec);
    // A record read back (not created here) is serialized as it is.
    const read = (await store.get('json-1'))!;
    expect(jobJson(read)).toBe(JSON.stringify(read));
  });

  it('without an insert, create only records (the scripts tests use it so)', async () => {
    expect(await store.create('n1', spec('n1'), 'acme', UNLIMITED)).toHaveProperty('created');
    expect(await queue.queue.getJob('n1')).toBeUndefined();
  });

  it('stores no journal for a queued job; its "Job queued." event is made from the record, first of any stored ones', async () => {
    const outcome = await submit('e1', 'acme');
    if (!('created' in outcome)) throw new Error('e1 refused');
    const { createdAt } = outcome.created;
    expect(await redis.exists(store.keys.events('e1'))).toBe(0);
    const queued = { id: QUEUED_EVENT_ID, at: createdAt, level: 'info', type: 'message', message: 'Job queued.', data: { status: 'queued' } };
    expect(await store.events.list('e1', { limit: 10 }, createdAt)).toEqual([queued]);

    const warning = await store.events.append('e1', { level: 'warning', message: 'a warning' });
    expect(await store.events.list('e1', { limit: 10 }, createdAt)).toMatchObject([queued, { id: warning, message: 'a warning' }]);
    // Pages and cursors: "0-1" resumes with the first stored event; "0-0" is the start.
    expect(await store.events.list('e1', { limit: 1 }, createdAt)).toEqual([queued]);
    expect(await store.events.list('e1', { after: QUEUED_EVENT_ID, limit: 10 }, createdAt)).toMatchObject([{ id: warning }]);
    expect(await store.events.list('e1', { after: '0-0', limit: 10 }, createdAt)).toHaveLength(2);
    expect(await store.events.list('e1', { after: warning!, limit: 10 }, createdAt)).toEqual([]);
  });

  it('a journal written before stores its own "Job queued." first: it is not doubled', async () => {
    await submit('old', 'acme');
    await redis.xadd(store.keys.events('old'), '*', 'level', 'info', 'type', 'message', 'message', 'Job queued.', 'data', JSON.stringify({ status: 'queued' }));
    const events = await store.events.list('old', { limit: 10 }, new Date().toISOString());
    expect(events.map((e) => e.message)).toEqual(['Job queued.']);
    expect(events[0].id).not.toBe(QUEUED_EVENT_ID);
  });

  it("create.lua's keys are scriptKeys, with only the ones it never reads left empty", () => {
    const all = store.keys.scriptKeys('k1', 'out', 'acme');
    const sent = store.keys.createKeys('k1', 'out', 'acme');
    expect(sent).toHaveLength(all.length);
    sent.forEach((key, i) => expect([all[i], '']).toContain(key));
    expect(sent.filter((key) => key !== '')).toHaveLength(11);
  });

  it("the template fills in BullMQ's own capture for any id and time", () => {
    const options = (jobId: string) => ({ jobId, priority: 1, attempts: 2 });
    const template = new BullInsertTemplate(queue.queue, TRAIN_JOB_NAME, (jobId: string) => ({ jobId }), options);
    expect(template.templated).toBe(true);
    for (const id of ['0b5e1c2a-7d3f-4f7e-9a51-3c2d1e0f9a8b', 'with "quotes" and \\ backslash']) {
      const filled = template.for(id, 1_800_000_000_123);
      const real = captureBullInsert(queue.queue, TRAIN_JOB_NAME, { jobId: id }, options(id), 1_800_000_000_123);
      expect(filled.keys).toEqual(real.keys);
      expect(filled.args.map((a) => JSON.parse(a) as unknown)).toEqual(real.args.map((a) => JSON.parse(a) as unknown));
    }
  });

  it('refuses to capture anything but the prioritized insert create.lua runs', () => {
    expect(() => captureBullInsert(queue.queue, TRAIN_JOB_NAME, { jobId: 'd1' }, { jobId: 'd1', priority: 1, delay: 5000 })).toThrow(/addPrioritizedJob/);
  });
});
