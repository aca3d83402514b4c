import { Writable } from 'node:stream';
import pino from 'pino';
import request from 'supertest';
import { buildApp } from '../../src/api/app';
import { createServices } from '../../src/api/services';
import { buildTestApp, type TestApp } from '../helpers/app';
import { makeTestEnv, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';
import { classifierSpec } from '../helpers/jobs';

/**
 * Budgets that keep the API responsive whatever a request asks: the job-spec size, the size and
 * names of a user topology, regexes over long names, and load shedding.
 */

const dense = (name: string) => ({ class_name: 'Dense', config: { name, units: 4 } });
const topologySpec = (topology: unknown, extra: Record<string, unknown> = {}) => ({
  type: 'pretrain',
  model: { topology },
  dataset: { name: 'digits', validationSplit: 0.1 },
  training: { epochs: 1 },
  output: { checkpoint: 'out' },
  ...extra,
});
const sequential = (names: string[]) => ({ class_name: 'Sequential', config: { name: 'user-net', layers: names.map(dense) } });

function expectError(res: request.Response, status: number, code: string, param?: string | null): void {
  expect([res.status, res.body?.error?.code]).toEqual([status, code]);
  expect(typeof res.body.error.message).toBe('string');
  if (param !== undefined) expect(res.body.error.param).toBe(param);
}

describe('job-spec and topology budgets', () => {
  let env: TestEnv;
  let t: TestApp;

  beforeAll(async () => {
    env = await makeTestEnv({ JOB_SPEC_MAX_BYTES: '8192', MODEL_MAX_LAYERS: '5' });
    await writeMnistDataset(env.dataDir, 'digits', { train: 50, test: 10 });
    t = await buildTestApp(env);
  });

  afterAll(async () => {
    await t.close();
    await env.cleanup();
  });

  it.each(['/v1/jobs', '/v1/plans'])('%s: a spec over JOB_SPEC_MAX_BYTES is a 413 body_too_large', async (route) => {
    const big = topologySpec(sequential(Array.from({ length: 4 }, (_, i) => `layer_${i}`)), { pad: 'x'.repeat(9000) });
    const res = await request(t.app.server).post(route).set('content-type', 'application/json').send(JSON.stringify(big));
    expectError(res, 413, 'body_too_large', null);
  });

  it('other JSON routes keep BODY_LIMIT_BYTES', async () => {
    // Not a job spec: the global limit (1 MiB by default) applies, so the body reaches validation.
    const res = await request(t.app.server).post('/v1/jobs/some-id/cancel').set('content-type', 'application/json').send(JSON.stringify({ pad: 'x'.repeat(9000) }));
    expect(res.status).toBe(404);
  });

  it('a topology over MODEL_MAX_LAYERS is a 422 model_too_large naming the numbers', async () => {
    const spec = topologySpec(sequential(Array.from({ length: 6 }, (_, i) => `layer_${i}`)));
    for (const route of ['/v1/jobs', '/v1/plans']) {
      const res = await request(t.app.server).post(route).send(spec);
      const error = route === '/v1/jobs' ? res.body.error : res.body.errors.find((e: { code: string }) => e.code === 'model_too_large');
      expect(res.status).toBe(route === '/v1/jobs' ? 422 : 200);
      expect(error).toMatchObject({ code: 'model_too_large', param: '/model/topology/config/layers' });
      expect(error.message).toMatch(/6 layers.*at most 5/);
    }
  });

  it('layer names of a user topology must be valid names: 422 invalid_layer_name pointing into the topology', async () => {
    const res = await request(t.app.server).post('/v1/jobs').send(topologySpec(sequential(['ok_1', 'not ok!'])));
    expectError(res, 422, 'invalid_layer_name', '/model/topology/config/layers/1/config/name');
    expect(res.body.error.message).toContain('"not ok!"');

    const wrapped = { modelTopology: sequential([`${'x'.repeat(200)}`]) };
    const long = await request(t.app.server).post('/v1/jobs').send(topologySpec(wrapped));
    expectError(long, 422, 'invalid_layer_name', '/model/topology/modelTopology/config/layers/0/config/name');
    expect(long.body.error.message).toContain('200 characters');

    const plan = await request(t.app.server).post('/v1/plans').send(topologySpec(sequential(['ok_1', 'not ok!'])));
    expect(plan.status).toBe(200);
    expect(plan.body.valid).toBe(false);
    expect(plan.body.plan).toBeNull(); // nothing was built from the bad topology
    expect(plan.body.errors.map((e: { code: string }) => e.code)).toContain('invalid_layer_name');
  });

  it('a pattern catastrophic for a backtracking engine runs over long layer names in linear time', async () => {
    // `^(a+)+$` against 127 a's and a b takes ~2^127 steps in a backtracking engine.
    const names = Array.from({ length: 5 }, (_, i) => `${'a'.repeat(126)}${i}b`);
    const started = Date.now();
    const res = await request(t.app.server).post('/v1/jobs').send(topologySpec(sequential(names), { freeze: '^(a+)+$', training: { epochs: 1, lrMultipliers: { '(a|aa)+$': 0.5 } } }));
    expectError(res, 422, 'freeze_matches_nothing', '/freeze');
    expect(Date.now() - started).toBeLessThan(5000);
    const health = await request(t.app.server).get('/healthz');
    expect(health.status).toBe(200);
  });

  it.each([
    ['/freeze', { freeze: '(?<=enc_)conv' }, 'lookbehind'],
    ['/freeze', { freeze: '^(?!dec_)' }, 'lookahead'],
    ['/training/lrMultipliers/(a)\\1', { training: { epochs: 1, lrMultipliers: { '(a)\\1': 0.1 } } }, 'backreference'],
  ])('%s: 400 regex_unsupported names the construct', async (param, extra, construct) => {
    const res = await request(t.app.server).post('/v1/jobs').send(topologySpec(sequential(['a_1']), extra));
    expectError(res, 400, 'regex_unsupported', param);
    expect(res.body.error.message).toContain(construct);
  });
});

describe('load shedding', () => {
  let env: TestEnv;
  let t: TestApp;

  beforeAll(async () => {
    // Any process uses more than 1 MB of heap: the API sheds load from the first sample on.
    env = await makeTestEnv({ PRESSURE_MAX_HEAP_USED_MB: '1', PRESSURE_RETRY_AFTER_SECONDS: '7' });
    t = await buildTestApp(env);
    const deadline = Date.now() + 5000;
    while (!t.app.isUnderPressure() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  });

  afterAll(async () => {
    await t.close();
    await env.cleanup();
  });

  it('answers 503 overloaded with Retry-After in the error shape', async () => {
    for (const res of [await request(t.app.server).get('/v1/jobs'), await request(t.app.server).post('/v1/jobs').send({})]) {
      expectError(res, 503, 'overloaded', null);
      expect(res.headers['retry-after']).toBe('7');
      expect(res.body.error.message).toMatch(/overloaded \((heap in use \d+ MB|event loop blocked|event-loop delay \d+ ms)/);
    }
  });

  it('keeps /healthz answering; /readyz says not ready because of load', async () => {
    const live = await request(t.app.server).get('/healthz');
    expect([live.status, live.body]).toEqual([200, { status: 'ok' }]);
    const ready = await request(t.app.server).get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.load.ok).toBe(false);
    expect(ready.body.checks.redis.ok).toBe(true);
  });
});

describe('one logger', () => {
  it('the job-submission line carries the request id', async () => {
    const env = await makeTestEnv({ LOG_LEVEL: 'info' });
    await writeMnistDataset(env.dataDir, 'digits', { train: 50, test: 10 });
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const logger = pino({ level: 'info' }, sink);
    const services = await createServices(env.config, logger.child({ component: 'services' }));
    const app = await buildApp({ config: env.config, deps: services.deps, logger });
    try {
      await app.ready();
      const res = await request(app.server).post('/v1/jobs').send(classifierSpec('logged', 1));
      expect(res.status).toBe(202);
      const queued = lines.find((l) => l.msg === 'job queued');
      expect(queued).toMatchObject({ jobId: res.body.id });
      const accessLine = lines.find((l) => l.msg === 'request completed' && l.url === '/v1/jobs');
      expect(accessLine?.reqId).toEqual(expect.any(String));
      expect(queued!.reqId).toBe(accessLine!.reqId);
    } finally {
      await app.close();
      await services.close();
      await env.cleanup();
    }
  }, 60_000);
});
