import { promises as fs } from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { buildTestApp, type TestApp } from '../helpers/app';
import { writeTinyCheckpoint } from '../helpers/checkpoint';
import { makeTempDir, makeTestEnv, waitFor, type TestEnv } from '../helpers/env';
import { checkpointNames, seeded, sleep } from '../helpers/faults';
import { writeMnistDataset } from '../helpers/fixtures';
import { classifierSpec, waitForJobEnd } from '../helpers/jobs';
import { startProcess, type RunningProcess } from '../helpers/processes';

/** Races between requests and workers: cancel around pickup, many submissions for one name, uploads vs. jobs. */

const FINISHED = ['succeeded', 'failed', 'cancelled'];

describe('cancel at random moments around pickup', () => {
  let env: TestEnv;
  let t: TestApp;
  let workers: RunningProcess[] = [];

  beforeAll(async () => {
    env = await makeTestEnv({ RETRY_BACKOFF_MS: '200', RECONCILE_INTERVAL_SECONDS: '2' });
    await writeMnistDataset(env.dataDir, 'digits', { train: 160, test: 20 });
    t = await buildTestApp(env);
    workers = [startProcess('worker', env.env), startProcess('worker', env.env)];
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await t.close();
    await env.cleanup();
  });

  it('24 seeded runs: every cancelled job wrote no checkpoint; none stays queued or running', async () => {
    const random = seeded(20_261_202);
    const runs: { id: string; output: string; delay: number; cancel: number }[] = [];
    // Waves of three jobs for two workers: some are taken at once, one waits; each is cancelled
    // after a seeded delay, mostly within the first moments of its life (around pickup). 20 epochs
    // (1–2 s a job here): with 2, a job could finish within 250 ms of its submission, and only 5 of
    // 24 were really cancelled, too few for the invariants below to mean something.
    for (let wave = 0; wave < 8; wave++) {
      const batch = await Promise.all(
        [0, 1, 2].map(async (k) => {
          const output = `race-${wave}-${k}`;
          const sub = await request(t.app.server).post('/v1/jobs').send(classifierSpec(output, 20, wave * 3 + k));
          expect(sub.status).toBe(202);
          const delay = random() < 0.6 ? Math.floor(random() * 400) : Math.floor(random() * 4000);
          await sleep(delay);
          const res = await request(t.app.server).post(`/v1/jobs/${sub.body.id}/cancel`);
          // 200 cancelled, 202 pending; 409 when it had already finished or was writing its output.
          expect([200, 202, 409]).toContain(res.status);
          return { id: sub.body.id as string, output, delay, cancel: res.status };
        }),
      );
      runs.push(...batch);
      await Promise.all(batch.map((r) => waitForJobEnd(t.app.server, r.id, 60_000, () => workers.map((w) => w.output().slice(-600)).join('\n'))));
    }
    const names = await checkpointNames(env.dataDir);
    const statuses: string[] = [];
    for (const r of runs) {
      const job = (await request(t.app.server).get(`/v1/jobs/${r.id}`)).body;
      statuses.push(job.status);
      expect(FINISHED).toContain(job.status);
      if (job.status === 'cancelled') expect(names).not.toContain(r.output);
      if (job.status === 'succeeded') expect(names).toContain(r.output);
      if (job.status === 'failed') throw new Error(`run ${r.id} failed: ${JSON.stringify(job.error)}`);
    }
    // Enough runs must really be cancelled (not finished first) for the invariants above to mean something.
    expect(statuses.filter((s) => s === 'cancelled').length).toBeGreaterThanOrEqual(6);
    // The workers are idle: nothing is left queued or running.
    await sleep(1000);
    for (const status of ['queued', 'running']) {
      expect((await request(t.app.server).get(`/v1/jobs?status=${status}`)).body.data).toEqual([]);
    }
  }, 240_000);
});

describe('submissions and uploads racing for checkpoint names (no worker)', () => {
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

  it('200 concurrent submissions naming 10 outputs: exactly one accepted per name', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => t.app.inject({ method: 'POST', url: '/v1/jobs', payload: classifierSpec(`name-${i % 10}`, 1, i) })),
    );
    const accepted = results.filter((r) => r.statusCode === 202).map((r) => r.json() as { id: string; spec: { output: { checkpoint: string } } });
    const refused = results.filter((r) => r.statusCode !== 202);
    expect(accepted).toHaveLength(10);
    expect(new Set(accepted.map((j) => j.spec.output.checkpoint)).size).toBe(10);
    for (const r of refused) {
      expect(r.statusCode).toBe(409);
      expect(r.json().error.code).toBe('checkpoint_reserved');
    }
    const queued = (await request(t.app.server).get('/v1/jobs?status=queued&limit=100')).body.data as { id: string }[];
    expect(queued.map((j) => j.id).sort()).toEqual(accepted.map((j) => j.id).sort());
    // Every job has a fair-scheduling priority, so BullMQ keeps them in its prioritized set.
    expect(await t.services.queue.queue.getJobCountByTypes('waiting', 'prioritized')).toBe(10);
  }, 120_000);

  it('an uploaded manifest naming a queued job does not touch that job; uploads respect reserved names', async () => {
    const sub = await request(t.app.server).post('/v1/jobs').send(classifierSpec('wanted', 1, 3));
    expect(sub.status).toBe(202);
    const jobId = sub.body.id as string;
    // A checkpoint whose manifest claims to be that job's output.
    const src = await makeTempDir('graft-forged-');
    try {
      await writeTinyCheckpoint(src, 'forged');
      const dir = path.join(src, 'tenants', 'default', 'checkpoints', 'forged');
      const manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8'));
      await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify({ ...manifest, jobId, jobType: 'pretrain', name: 'wanted' }));
      const upload = async (name: string) => {
        const req = request(t.app.server).post('/v1/checkpoints').field('name', name);
        for (const f of await fs.readdir(dir)) req.attach('file', await fs.readFile(path.join(dir, f)), f);
        return req;
      };
      // Under the job's output name: refused, the name is the job's.
      const clash = await upload('wanted');
      expect(clash.status).toBe(409);
      expect(clash.body.error).toMatchObject({ code: 'checkpoint_reserved', param: '/name' });
      expect(await checkpointNames(env.dataDir)).not.toContain('wanted');
      // Under another name: accepted, with a manifest of its own.
      const other = await upload('forged-copy');
      expect(other.status).toBe(201);
      expect(other.body.manifest.jobType).toBe('upload');
      expect(other.body.manifest.jobId).not.toBe(jobId);
      const stored = JSON.parse(await fs.readFile(path.join(env.dataDir, 'tenants', 'default', 'checkpoints', 'forged-copy', 'manifest.json'), 'utf8'));
      expect(stored).toMatchObject({ jobType: 'upload', lineage: { jobId, jobType: 'pretrain' } });
    } finally {
      await fs.rm(src, { recursive: true, force: true });
    }
    const job = (await request(t.app.server).get(`/v1/jobs/${jobId}`)).body;
    expect(job).toMatchObject({ status: 'queued', result: null, error: null, attempts: 0 });

    // A worker then trains it for real and writes its own checkpoint.
    const worker = startProcess('worker', env.env);
    try {
      const done = await waitForJobEnd(t.app.server, jobId, 90_000, () => worker.output().slice(-800));
      expect(done.status).toBe('succeeded');
      const written = JSON.parse(await fs.readFile(path.join(env.dataDir, 'tenants', 'default', 'checkpoints', 'wanted', 'manifest.json'), 'utf8'));
      expect(written).toMatchObject({ jobId, jobType: 'pretrain' });
      expect(written.history).toHaveLength(1);
    } finally {
      await worker.stop();
    }
    await waitFor(async () => (await request(t.app.server).get('/v1/jobs?status=queued')).body.data.length === 0, 10_000, 'the queue to drain');
  }, 150_000);
});
