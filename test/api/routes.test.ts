import request from 'supertest';
import { buildTestApp, type TestApp } from '../helpers/app';
import { writeTinyCheckpoint } from '../helpers/checkpoint';
import { makeTestEnv, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';

describe('read routes', () => {
  let env: TestEnv;
  let t: TestApp;

  beforeAll(async () => {
    env = await makeTestEnv();
    await writeMnistDataset(env.dataDir, 'digits', { train: 60, test: 20 });
    await writeTinyCheckpoint(env.dataDir, 'tiny');
    t = await buildTestApp(env);
  });

  afterAll(async () => {
    await t.close();
    await env.cleanup();
  });

  it('GET /healthz and /readyz', async () => {
    expect((await request(t.app.server).get('/healthz')).body).toEqual({ status: 'ok' });
    const ready = await request(t.app.server).get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready', checks: { redis: { ok: true }, volume: { ok: true }, load: { ok: true } } });
  });

  it('lists and describes datasets', async () => {
    const list = await request(t.app.server).get('/v1/datasets');
    expect(list.body.data).toEqual([expect.objectContaining({ name: 'digits', format: 'idx', inputShape: [28, 28, 1], numClasses: 10, trainCount: 60, testCount: 20 })]);
    const one = await request(t.app.server).get('/v1/datasets/digits');
    expect(one.body).toMatchObject({ name: 'digits', format: 'idx', classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'], splits: { train: { count: 60 }, test: { count: 20 } } });
  });

  it('lists and describes checkpoints with their layer table', async () => {
    const list = await request(t.app.server).get('/v1/checkpoints');
    expect(list.body.data.map((c: { name: string }) => c.name)).toEqual(['tiny']);
    const one = await request(t.app.server).get('/v1/checkpoints/tiny');
    expect(one.status).toBe(200);
    const conv = one.body.layers.find((l: { name: string }) => l.name === 'enc_conv1');
    expect(conv).toMatchObject({ className: 'Conv2D', outputShape: [null, 24, 24, 4], params: 5 * 5 * 4 + 4 });
    expect(conv.weights).toEqual([{ name: 'enc_conv1/kernel', shape: [5, 5, 1, 4] }, { name: 'enc_conv1/bias', shape: [4] }]);
    expect(one.body.manifest.jobId).toBe('fixture');
  });

  it.each([
    ['/v1/datasets/nope', 404, 'dataset_not_found'],
    ['/v1/checkpoints/nope', 404, 'checkpoint_not_found'],
    ['/v1/jobs/00000000-0000-0000-0000-000000000000', 404, 'job_not_found'],
    ['/v1/datasets/..%2Fetc', 400, 'invalid_name'],
    ['/v1/checkpoints/a%20b', 400, 'invalid_name'],
    ['/v1/jobs?status=done', 400, 'invalid_value'],
    ['/v1/jobs?limit=0', 400, 'invalid_value'],
    ['/v1/jobs?limit=abc', 400, 'invalid_type'],
    ['/v1/jobs?cursor=x', 400, 'invalid_value'],
    ['/v1/nothing', 404, 'route_not_found'],
  ])('GET %s → %i %s', async (url, status, code) => {
    const res = await request(t.app.server).get(url);
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect(typeof res.body.error.message).toBe('string');
  });

  it('names the part of the request an error is in (path, query)', async () => {
    const path = await request(t.app.server).get('/v1/datasets/a%20b');
    expect(path.body.error.message).toMatch(/^Path parameter `name`/);
    const query = await request(t.app.server).get('/v1/jobs?limit=0');
    expect(query.body.error.message).toMatch(/^Query parameter `limit`/);
  });

  it('serves the OpenAPI document and the docs UI', async () => {
    const doc = await request(t.app.server).get('/openapi.json');
    expect(doc.body.openapi).toBe('3.1.0');
    const ui = await request(t.app.server).get('/docs/');
    expect(ui.status).toBe(200);
    expect(ui.text).toContain('swagger');
  });
});
