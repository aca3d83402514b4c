import { execFileSync, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import request from 'supertest';
import { buildTestApp, type TestApp } from '../helpers/app';
import { makeTempDir, makeTestEnv, waitFor, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';
import { classifierSpec, waitForJobEnd } from '../helpers/jobs';
import { freePort, startProcess, type RunningProcess } from '../helpers/processes';

/**
 * Nothing accepted is lost: training processes killed with SIGKILL, a worker stopped with SIGTERM
 * mid-job, and Redis itself restarted between submit and pickup.
 */

const FAST_RETRY = { RETRY_BACKOFF_MS: '200', JOB_ATTEMPTS: '3', EPOCH_CHECKPOINTS_KEEP: '2' };

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)]).toString().trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

interface Events {
  data: { message: string; data: Record<string, unknown> | null }[];
}

describe('crashes and restarts', () => {
  let env: TestEnv;
  let t: TestApp;
  let workers: RunningProcess[] = [];

  beforeAll(async () => {
    env = await makeTestEnv(FAST_RETRY);
    await writeMnistDataset(env.dataDir, 'digits', { train: 800, test: 200 });
    t = await buildTestApp(env);
  });

  afterEach(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    workers = [];
  });

  afterAll(async () => {
    await t.close();
    await env.cleanup();
  });

  const get = async (id: string) => (await request(t.app.server).get(`/v1/jobs/${id}`)).body;
  const finished = (id: string) => waitForJobEnd(t.app.server, id, 120_000, () => workers.map((w) => w.output().slice(-800)).join('\n--\n'));

  it('kill -9 of the training process at random points, 5 runs: every job succeeds and resumes from its last epoch', async () => {
    workers = [startProcess('worker', env.env), startProcess('worker', env.env)];
    const epochs = 4;
    for (let run = 0; run < 5; run++) {
      const sub = await request(t.app.server).post('/v1/jobs').send(classifierSpec(`killed-${run}`, epochs, run));
      expect(sub.status).toBe(202);
      // A random point: some runs die in epoch 1 (nothing to resume), most later.
      const killEpoch = 1 + Math.floor(Math.random() * (epochs - 1));
      const killBatch = 1 + Math.floor(Math.random() * 20);
      const running = await waitFor(async () => {
        const j = await get(sub.body.id);
        const p = j.progress;
        return j.status === 'running' && p?.phase === 'training' && (p.epoch > killEpoch || (p.epoch === killEpoch && p.batch >= killBatch)) ? j : null;
      }, 60_000, `run ${run} to reach epoch ${killEpoch} batch ${killBatch}`, 20);
      const workerPid = Number(String(running.worker).split(':').pop());
      const [child] = childrenOf(workerPid);
      expect(child).toBeDefined();
      const diedIn = running.progress.epoch;
      process.kill(child, 'SIGKILL');

      const done = await finished(sub.body.id);
      expect(done.error).toBeNull();
      expect(done.status).toBe('succeeded');
      expect(done.attempts).toBeGreaterThanOrEqual(2);
      const events = (await request(t.app.server).get(`/v1/jobs/${sub.body.id}/events?limit=1000`)).body as Events;
      const resumedAt = events.data.map((e) => (e.data?.resume as { epoch: number } | undefined)?.epoch).find((e) => e !== undefined);
      if (diedIn >= 2) expect(resumedAt).toBeGreaterThanOrEqual(2); // killed after epoch 1: did not start over
      const manifest = JSON.parse(await fs.readFile(path.join(env.dataDir, 'tenants', 'default', 'checkpoints', `killed-${run}`, 'manifest.json'), 'utf8'));
      expect(manifest.jobId).toBe(sub.body.id);
      expect(manifest.history.map((h: { epoch: number }) => h.epoch)).toEqual([1, 2, 3, 4]);
      expect((await request(t.app.server).get(`/v1/checkpoints/killed-${run}`)).status).toBe(200);
    }
  }, 300_000);

  it('SIGTERM on a worker mid-job: it checkpoints, exits in time, and the other worker finishes the job (one output)', async () => {
    workers = [startProcess('worker', env.env), startProcess('worker', env.env)];
    const sub = await request(t.app.server).post('/v1/jobs').send(classifierSpec('handed-over', 5, 9));
    const running = await waitFor(async () => {
      const j = await get(sub.body.id);
      return j.status === 'running' && j.progress?.phase === 'training' && j.progress.epoch >= 2 && j.progress.batch >= 3 ? j : null;
    }, 60_000, 'job mid-training', 20);
    const holder = workers.find((w) => String(w.child.pid) === String(running.worker).split(':').pop())!;
    const other = workers.find((w) => w !== holder)!;
    const asked = Date.now();
    expect(await holder.stop(30_000)).toBe(0);
    expect(Date.now() - asked).toBeLessThan(30_000);

    const done = await finished(sub.body.id);
    expect(done.status).toBe('succeeded');
    expect(String(done.worker).split(':').pop()).toBe(String(other.child.pid));
    const events = ((await request(t.app.server).get(`/v1/jobs/${sub.body.id}/events?limit=1000`)).body as Events).data.map((e) => e.message);
    expect(events.some((m) => /shutting down: training was checkpointed at epoch [2-5]/.test(m))).toBe(true);
    expect(events.some((m) => /Resuming from the checkpoint at epoch [2-5]/.test(m))).toBe(true);
    const names = (await request(t.app.server).get('/v1/checkpoints')).body.data.map((c: { name: string }) => c.name);
    expect(names.filter((n: string) => n === 'handed-over')).toHaveLength(1);
    expect(await fs.readdir(path.join(env.dataDir, 'tenants', 'default', 'checkpoints'))).toContain('handed-over');
  }, 180_000);
});

describe('a private Redis with AOF, restarted between submit and pickup', () => {
  it('keeps the job, which then completes', async () => {
    const redisDir = await makeTempDir('graft-redis-');
    const port = await freePort();
    const startRedis = () => {
      const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', redisDir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], { stdio: 'ignore' });
      return proc;
    };
    const url = `redis://127.0.0.1:${port}`;
    const ping = async () => {
      const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      r.on('error', () => undefined);
      try {
        await r.connect();
        return (await r.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        r.disconnect();
      }
    };
    let redis = startRedis();
    await waitFor(ping, 10_000, 'private redis');
    const env = await makeTestEnv({ REDIS_URL: url });
    let worker: RunningProcess | null = null;
    try {
      await writeMnistDataset(env.dataDir, 'digits', { train: 200, test: 50 });
      let t = await buildTestApp(env);
      const sub = await request(t.app.server).post('/v1/jobs').send(classifierSpec('after-restart', 1));
      expect(sub.status).toBe(202);
      await t.close();

      redis.kill('SIGTERM');
      await new Promise((r) => redis.once('exit', r));
      expect(await ping()).toBe(false);
      redis = startRedis();
      await waitFor(ping, 10_000, 'restarted redis');

      t = await buildTestApp(env);
      expect((await request(t.app.server).get(`/v1/jobs/${sub.body.id}`)).body.status).toBe('queued');
      worker = startProcess('worker', env.env);
      const done = await waitFor(async () => {
        const j = (await request(t.app.server).get(`/v1/jobs/${sub.body.id}`)).body;
        return j.status === 'succeeded' || j.status === 'failed' ? j : null;
      }, 60_000, `the job after the restart (${worker.output().slice(-800)})`);
      expect(done.status).toBe('succeeded');
      expect(await worker.stop()).toBe(0);
      worker = null;
      await t.close();
    } finally {
      await worker?.stop();
      redis.kill('SIGTERM');
      await new Promise((r) => redis.once('exit', r));
      await fs.rm(env.dataDir, { recursive: true, force: true });
      await fs.rm(redisDir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('a whole worker process lost (kill -9 of the worker, not only its training child)', () => {
  it('a live worker takes the job over once its lock expires, and resumes it', async () => {
    const env = await makeTestEnv({ ...FAST_RETRY, WORKER_LOCK_SECONDS: '4' });
    const t = await buildTestApp(env);
    const workers: RunningProcess[] = [];
    try {
      await writeMnistDataset(env.dataDir, 'digits', { train: 800, test: 200 });
      workers.push(startProcess('worker', env.env));
      const sub = await request(t.app.server).post('/v1/jobs').send(classifierSpec('host-lost', 4, 4));
      await waitFor(async () => {
        const j = (await request(t.app.server).get(`/v1/jobs/${sub.body.id}`)).body;
        return j.status === 'running' && j.progress?.phase === 'training' && j.progress.epoch >= 2 && j.progress.batch >= 2;
      }, 60_000, 'job in epoch 2', 20);
      // The host dies: worker and training child together, no chance to clean up.
      const [child] = childrenOf(workers[0].child.pid!);
      workers[0].child.kill('SIGKILL');
      if (child) process.kill(child, 'SIGKILL');
      await workers[0].exited;
      workers.push(startProcess('worker', env.env));

      const done = await waitForJobEnd(t.app.server, sub.body.id, 90_000, () => workers[1].output().slice(-800));
      expect(done.status).toBe('succeeded');
      expect(String(done.worker).split(':').pop()).toBe(String(workers[1].child.pid));
      const events = (await request(t.app.server).get(`/v1/jobs/${sub.body.id}/events?limit=1000`)).body as Events;
      expect(events.data.some((e) => /Resuming from the checkpoint at epoch [2-4]/.test(e.message))).toBe(true);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await t.close();
      await env.cleanup();
    }
  }, 150_000);
});
