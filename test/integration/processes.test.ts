import request from 'supertest';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';
import { freePort, startProcess, type RunningProcess } from '../helpers/processes';

/**
 * graft as Compose runs it, as plain processes: one API and two workers sharing Redis and the
 * volume, configured by environment only. Several jobs must spread over both workers.
 */
describe('api + 2 workers as separate processes', () => {
  let env: TestEnv;
  let api: RunningProcess;
  let workers: RunningProcess[];
  let url: string;

  beforeAll(async () => {
    env = await makeTestEnv({ WORKER_CONCURRENCY: '1' });
    await writeMnistDataset(env.dataDir, 'digits', { train: 400, test: 100 });
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    api = startProcess('api', { ...env.env, PORT: String(port), HOST: '127.0.0.1' });
    workers = [startProcess('worker', env.env), startProcess('worker', env.env)];
    await waitFor(async () => (await request(url).get('/readyz').catch(() => null))?.status === 200, 20_000, `the API to be ready (${api.output()})`);
  });

  afterAll(async () => {
    const codes = await Promise.all([api, ...workers].map((p) => p.stop()));
    await env.cleanup();
    expect(codes).toEqual([0, 0, 0]);
  });

  it('spreads jobs over both workers and completes them all', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await request(url)
        .post('/v1/jobs')
        .send({
          type: 'pretrain',
          model: { architecture: 'conv-classifier', options: { filters: [4, 8] } },
          dataset: { name: 'digits' },
          training: { epochs: 2, batchSize: 32, seed: i },
          output: { checkpoint: `clf-${i}` },
        });
      expect(res.status).toBe(202);
      ids.push(res.body.id);
    }
    const jobs = await waitFor(
      async () => {
        const all = await Promise.all(ids.map(async (id) => (await request(url).get(`/v1/jobs/${id}`)).body));
        return all.every((j) => j.status === 'succeeded' || j.status === 'failed') ? all : null;
      },
      180_000,
      `4 jobs to finish (worker logs: ${workers.map((w) => w.output().slice(-1500)).join('\n---\n')})`,
      250,
    );
    for (const j of jobs) {
      expect(j.error).toBeNull();
      expect(j.status).toBe('succeeded');
      expect(j.result.metrics.test.accuracy).toBeGreaterThan(0.2);
    }
    const ranOn = new Set(jobs.map((j) => j.worker));
    expect(ranOn.size).toBe(2);
    const pids = workers.map((w) => String(w.child.pid));
    for (const w of ranOn) expect(pids).toContain(String(w).split(':').pop());
    const listed = await request(url).get('/v1/checkpoints');
    expect(listed.body.data.map((c: { name: string }) => c.name).sort()).toEqual(['clf-0', 'clf-1', 'clf-2', 'clf-3']);
  }, 240_000);
});
