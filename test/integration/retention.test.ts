import http from 'node:http';
import path from 'node:path';
import { Redis } from 'ioredis';
import request from 'supertest';
import { buildTestApp, type TestApp } from '../helpers/app';
import { makeTestEnv, TEST_REDIS_URL, waitFor, type TestEnv } from '../helpers/env';
import { entries, keysContaining, sleep } from '../helpers/faults';
import { writeMnistDataset } from '../helpers/fixtures';
import { classifierSpec, waitForJobEnd } from '../helpers/jobs';
import { freePort, startProcess, type RunningProcess } from '../helpers/processes';

/** Nothing grows without bound: expired jobs leave nothing behind, nor do crashed writes. */

describe('retention', () => {
  let env: TestEnv;
  let t: TestApp;
  let workers: RunningProcess[] = [];

  beforeAll(async () => {
    env = await makeTestEnv({ JOB_RETENTION_SECONDS: '3', RECONCILE_INTERVAL_SECONDS: '1', EPOCH_CHECKPOINTS_KEEP: '2', TMP_GRACE_SECONDS: '1' });
    await writeMnistDataset(env.dataDir, 'digits', { train: 64, test: 16 });
    t = await buildTestApp(env);
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await t.close();
    await env.cleanup();
  });

  it('after 50 jobs with a short retention, no folder, record, journal or index entry of an expired job remains', async () => {
    workers = [startProcess('worker', env.env), startProcess('worker', env.env)];
    const jobsDir = path.join(env.dataDir, 'jobs');
    let foldersSeen = 0;
    const watch = setInterval(() => void entries(jobsDir).then((e) => (foldersSeen = Math.max(foldersSeen, e.length))), 50);
    const ids: string[] = [];
    try {
      for (let i = 0; i < 50; i++) {
        const sub = await request(t.app.server).post('/v1/jobs').send({ ...classifierSpec(`kept-${i}`, 2, i), dataset: { name: 'digits', validationSplit: 0.1 } });
        expect(sub.status).toBe(202);
        ids.push(sub.body.id);
      }
      for (const id of ids) expect((await waitForJobEnd(t.app.server, id, 120_000, () => workers.map((w) => w.output().slice(-600)).join('\n'))).status).toBe('succeeded');
    } finally {
      clearInterval(watch);
    }
    // Each two-epoch job kept a training checkpoint in jobs/<id>/ while it lived.
    expect(foldersSeen).toBeGreaterThan(0);

    await waitFor(async () => (await entries(jobsDir)).length === 0, 20_000, 'the job folders to be removed');
    const redis = new Redis(TEST_REDIS_URL);
    try {
      await waitFor(async () => (await redis.zcard(`graft:${env.queueName}:expiries`)) === 0, 20_000, 'the expiry index to empty');
      for (const id of ids) {
        expect((await request(t.app.server).get(`/v1/jobs/${id}`)).status).toBe(404);
        // graft's keys (record, journal, cancel flag) are gone; BullMQ keeps its own work log.
        expect((await keysContaining(env.queueName, id)).filter((k) => k.startsWith('graft:'))).toEqual([]);
      }
      for (const index of ['jobs', 'jobs:queued', 'jobs:running', 'jobs:succeeded', 'jobs:failed', 'jobs:cancelled', 'expiries']) {
        const members = await redis.zrange(`graft:${env.queueName}:${index}`, '0', '-1');
        expect(members.filter((m) => ids.includes(m))).toEqual([]);
      }
    } finally {
      await redis.quit();
    }
    // The checkpoints themselves are the product: they stay.
    expect((await entries(path.join(env.dataDir, 'tenants', 'default', 'checkpoints'))).filter((n) => n.startsWith('kept-'))).toHaveLength(50);
  }, 240_000);

  it('after a crash mid-upload and a restart, .tmp/ is empty', async () => {
    const port = await freePort();
    const apiEnv = { ...env.env, PORT: String(port) };
    let api = startProcess('api', apiEnv);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok ?? false, 30_000, `the API (${api.output()})`);
    // An upload that never finishes: the name, then the start of a large file.
    const boundary = 'graftboundary';
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/checkpoints', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
    req.on('error', () => undefined);
    req.write(`--${boundary}\r\ncontent-disposition: form-data; name="name"\r\n\r\nhalf\r\n--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="model.json"\r\ncontent-type: application/octet-stream\r\n\r\n`);
    req.write(Buffer.alloc(256 * 1024, 1));
    const tmp = path.join(env.dataDir, '.tmp');
    await waitFor(async () => (await entries(tmp)).some((e) => e.startsWith('upload-')), 10_000, 'the upload to be staged');
    api.child.kill('SIGKILL');
    await api.exited;
    req.destroy();
    expect((await entries(tmp)).some((e) => e.startsWith('upload-'))).toBe(true);

    await sleep(1200);
    api = startProcess('api', apiEnv);
    workers.push(startProcess('worker', env.env));
    try {
      await waitFor(async () => (await entries(tmp)).filter((e) => !e.startsWith('.ready-')).length === 0, 15_000, `.tmp/ to be swept (${(await entries(tmp)).join(', ')})`);
    } finally {
      await api.stop();
    }
  }, 90_000);
});
