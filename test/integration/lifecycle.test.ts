import request from 'supertest';
import { buildTestApp, type TestApp } from '../helpers/app';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';
import { startProcess, type RunningProcess } from '../helpers/processes';
import { readSse } from '../helpers/sse';
import { classifierSpec, waitForJobEnd } from '../helpers/jobs';


describe('without a worker: queued jobs', () => {
  let env: TestEnv;
  let t: TestApp;

  beforeAll(async () => {
    env = await makeTestEnv();
    await writeMnistDataset(env.dataDir, 'digits', { train: 100, test: 20 });
    t = await buildTestApp(env);
  });

  afterAll(async () => {
    await t.close();
    await env.cleanup();
  });

  it('cancels a queued job at once; repeating is harmless; it leaves the queue', async () => {
    const sub = await request(t.app.server).post('/v1/jobs').send(classifierSpec('never', 1));
    const first = await request(t.app.server).post(`/v1/jobs/${sub.body.id}/cancel`);
    expect(first.status).toBe(200);
    expect(first.body.status).toBe('cancelled');
    expect(first.body.finishedAt).not.toBeNull();
    expect((await request(t.app.server).post(`/v1/jobs/${sub.body.id}/cancel`)).status).toBe(200);
    expect(await t.services.queue.queue.getJob(sub.body.id)).toBeUndefined();
    // The output name is free again.
    expect((await request(t.app.server).post('/v1/jobs').send(classifierSpec('never', 1))).status).toBe(202);
    const events = await request(t.app.server).get(`/v1/jobs/${sub.body.id}/events`);
    expect(events.body.data.map((e: { data: { status?: string } }) => e.data?.status).filter(Boolean)).toEqual(['queued', 'cancelled']);
    expect((await request(t.app.server).post('/v1/jobs/nope-nope/cancel')).status).toBe(404);
  });

  it('Idempotency-Key: same key and body → the original job (200); another body → 409', async () => {
    const body = classifierSpec('idem-out', 1);
    const a = await request(t.app.server).post('/v1/jobs').set('idempotency-key', 'key-1').send(body);
    expect(a.status).toBe(202);
    const b = await request(t.app.server).post('/v1/jobs').set('idempotency-key', 'key-1').send(JSON.parse(JSON.stringify(body)));
    expect(b.status).toBe(200);
    expect(b.body.id).toBe(a.body.id);
    const c = await request(t.app.server).post('/v1/jobs').set('idempotency-key', 'key-1').send({ ...body, training: { epochs: 2 } });
    expect(c.status).toBe(409);
    expect(c.body.error.code).toBe('idempotency_key_reused');
    // A rejected body does not pin its key.
    const bad = await request(t.app.server).post('/v1/jobs').set('idempotency-key', 'key-2').send({ ...body, dataset: { name: 'missing' } });
    expect(bad.status).toBe(422);
    const fixed = await request(t.app.server).post('/v1/jobs').set('idempotency-key', 'key-2').send(classifierSpec('idem-2', 1));
    expect(fixed.status).toBe(202);
    const list = await request(t.app.server).get('/v1/jobs?status=queued&limit=100');
    expect(list.body.data.filter((j: { spec: { output: { checkpoint: string } } }) => j.spec.output.checkpoint === 'idem-out')).toHaveLength(1);
  });
});

describe('with a worker: cancel, events, SSE', () => {
  let env: TestEnv;
  let t: TestApp;
  let worker: RunningProcess;
  let base: string;

  beforeAll(async () => {
    env = await makeTestEnv();
    await writeMnistDataset(env.dataDir, 'digits', { train: 1000, test: 200 });
    t = await buildTestApp(env);
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const addr = t.app.server.address() as { port: number };
    base = `http://127.0.0.1:${addr.port}`;
    worker = startProcess('worker', env.env);
  });

  afterAll(async () => {
    const code = await worker.stop();
    await t.close();
    await env.cleanup();
    expect(code).toBe(0);
  });

  const job = async (id: string) => (await request(t.app.server).get(`/v1/jobs/${id}`)).body;

  it('cancels a running job within 2 s; no checkpoint, never retried; the worker takes the next job', async () => {
    const sub = await request(t.app.server).post('/v1/jobs').send(classifierSpec('cancel-me', 200));
    await waitFor(async () => {
      const j = await job(sub.body.id);
      return j.status === 'running' && j.progress?.phase === 'training' && j.progress.batch > 0;
    }, 60_000, `job to be training (${worker.output().slice(-1000)})`, 50);
    const asked = Date.now();
    const res = await request(t.app.server).post(`/v1/jobs/${sub.body.id}/cancel`);
    expect([200, 202]).toContain(res.status);
    const cancelled = await waitFor(async () => {
      const j = await job(sub.body.id);
      return j.status === 'cancelled' ? j : null;
    }, 10_000, 'cancelled', 25);
    expect(Date.now() - asked).toBeLessThan(2000);
    expect(cancelled.result).toBeNull();
    expect(cancelled.attempts).toBe(1);
    expect((await request(t.app.server).get('/v1/checkpoints/cancel-me')).status).toBe(404);
    expect((await request(t.app.server).post(`/v1/jobs/${sub.body.id}/cancel`)).status).toBe(200);

    const next = await request(t.app.server).post('/v1/jobs').send(classifierSpec('after-cancel', 1));
    const done = await waitForJobEnd(t.app.server, next.body.id, 60_000);
    expect(done.status).toBe('succeeded');
    expect(done.worker).toBe(cancelled.worker);
    expect((await request(t.app.server).post(`/v1/jobs/${next.body.id}/cancel`)).status).toBe(409);
  }, 120_000);

  it('streams every epoch of a running job over SSE in order, and resumes after a reconnect without gaps or duplicates', async () => {
    const epochs = 6;
    const sub = await request(t.app.server).post('/v1/jobs').send(classifierSpec('streamed', epochs, 3));
    const url = `${base}/v1/jobs/${sub.body.id}/events`;
    // Read a few events, drop the connection, reconnect with Last-Event-ID.
    const first = await readSse(url, { stopAfter: 4 });
    const rest = await readSse(url, { lastEventId: first.events[first.events.length - 1].id });
    expect(rest.ended).toBe(true);
    const all = [...first.events, ...rest.events];
    const ids = all.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    const listed = await request(t.app.server).get(`/v1/jobs/${sub.body.id}/events?limit=1000`);
    expect(ids).toEqual(listed.body.data.map((e: { id: string }) => e.id)); // nothing missing, same order
    const metrics = all.filter((e) => e.event === 'metrics').map((e) => e.data.data!.epoch);
    expect(metrics).toEqual(Array.from({ length: epochs }, (_, i) => i + 1));
    const statuses = all.map((e) => e.data.data?.status).filter(Boolean);
    expect(statuses).toEqual(['queued', 'running', 'succeeded']);

    const page = await request(t.app.server).get(`/v1/jobs/${sub.body.id}/events?limit=2`);
    expect(page.body.data).toHaveLength(2);
    const page2 = await request(t.app.server).get(`/v1/jobs/${sub.body.id}/events?limit=2&after=${page.body.nextCursor}`);
    expect(page2.body.data[0].id).toBe(ids[2]);
  }, 120_000);
});
