import request from 'supertest';
import { buildTestApp, type TestApp } from '../helpers/app';
import { writeTinyCheckpoint } from '../helpers/checkpoint';
import { makeTestEnv, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';

/**
 * Malformed submissions: every one must get a 4xx in the contract's error shape, none a 5xx, and
 * none may create a job. The source checkpoint and dataset exist, so the 422 cases are real.
 */
const VALID = {
  type: 'transfer',
  source: { checkpoint: 'src', restore: '^enc_conv' },
  freeze: '^enc_conv',
  model: { cut: 'enc_flatten', head: [{ type: 'dense', units: 10, activation: 'softmax', name: 'head_fc' }] },
  dataset: { name: 'mnist', validationSplit: 0.1 },
  training: { epochs: 1, batchSize: 32, optimizer: 'adam', learningRate: 0.001, seed: 1 },
  output: { checkpoint: 'out' },
};

type Body = Record<string, unknown>;
const clone = (): Body => JSON.parse(JSON.stringify(VALID)) as Body;

/** Returns VALID with the value at `pointer` replaced (or deleted when value is undefined). */
function withValue(pointer: string, value: unknown): Body {
  const body = clone();
  const parts = pointer.split('/').slice(1);
  let node = body as Record<string, unknown>;
  for (const p of parts.slice(0, -1)) node = node[p] as Record<string, unknown>;
  const last = parts[parts.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
  return body;
}

interface Case {
  name: string;
  body: unknown;
  status?: number;
  code?: string;
  param?: string | null;
}

const cases: Case[] = [];
const add = (name: string, body: unknown, expect: Partial<Case> = {}) => cases.push({ name, body, ...expect });

// Not an object at all.
for (const body of [null, [], 'transfer', 42, true, [VALID]]) add(`body ${JSON.stringify(body)}`, body, { status: 400 });

// Missing required fields.
for (const p of ['/type', '/dataset', '/output', '/dataset/name', '/output/checkpoint', '/source/checkpoint']) {
  add(`missing ${p}`, withValue(p, undefined), { status: 400, code: 'missing_field', param: p });
}
add('transfer without source', withValue('/source', undefined), { status: 400, code: 'missing_field', param: '/source' });

// Unknown fields at every level.
for (const at of ['', '/source', '/model', '/model/head/0', '/dataset', '/training', '/output']) {
  for (const field of ['extra', 'epoch']) {
    const body = clone();
    let node = body as Record<string, unknown>;
    for (const p of at.split('/').slice(1)) node = node[p] as Record<string, unknown>;
    node[field] = 1;
    add(`unknown ${at}/${field}`, body, { status: 400, code: 'unknown_field', param: `${at}/${field}` });
  }
}

// Wrong types.
const wrongTypes: [string, unknown[]][] = [
  ['/type', [1, null, {}, 'train', '']],
  ['/source', ['src', 1, []]],
  ['/source/checkpoint', [1, null, {}, ['src']]],
  ['/source/restore', [1, true, {}]],
  ['/freeze', [1, true, {}, [1], [null]]],
  ['/model', ['m', 1, []]],
  ['/model/cut', [1, {}, []]],
  ['/model/head', [{}, 'dense', []]],
  ['/model/head/0/type', ['conv2d', 1, null]],
  ['/model/head/0/units', ['10', 0, -1, 1.5, null]],
  ['/model/head/0/activation', ['gelu', 1]],
  ['/dataset/name', [1, null, {}]],
  ['/dataset/validationSplit', ['0.1', -0.1, 0.9, null]],
  ['/dataset/limit', [0, -5, 2.5, 'all']],
  ['/training', ['fast', 1, []]],
  ['/training/epochs', ['3', 0, -1, 1.5, 100000, null, true]],
  ['/training/batchSize', ['64', 0, 10000, 3.2]],
  ['/training/optimizer', ['adamw', 1, null]],
  ['/training/learningRate', ['0.1', 0, -1, 100, null]],
  ['/training/seed', [-1, 1.5, '7', 2 ** 31]],
  ['/training/lrMultipliers', ['0.1', [0.1], { '^enc': '0.1' }, { '^enc': -1 }]],
  ['/training/earlyStopping', [true, 3, { patience: 0 }, {}]],
  ['/training/maxRuntimeSeconds', [0, '60']],
  ['/output/checkpoint', [1, null, {}]],
  ['/output/select', ['first', 1]],
];
for (const [p, values] of wrongTypes) for (const v of values) add(`${p} = ${JSON.stringify(v)}`, withValue(p, v), { status: 400 });

// Bad names.
const badNames = ['', '../etc', 'a/b', '.hidden', '-dash', 'x'.repeat(65), 'with space', 'ümlaut', 'a\\b', '..'];
for (const n of badNames) {
  add(`output name ${JSON.stringify(n)}`, withValue('/output/checkpoint', n), { status: 400, code: 'invalid_name', param: '/output/checkpoint' });
  // `<namespace>/<name>` is a reference form for inputs (public/<name>); another namespace is a missing name, not a bad one.
  if (n === 'a/b') continue;
  add(`dataset name ${JSON.stringify(n)}`, withValue('/dataset/name', n), { status: 400, code: 'invalid_name', param: '/dataset/name' });
  add(`source name ${JSON.stringify(n)}`, withValue('/source/checkpoint', n), { status: 400, code: 'invalid_name', param: '/source/checkpoint' });
}
for (const n of ['a/b/c', 'Public/mnist', 'public/', '/mnist', 'public/../x']) {
  add(`dataset reference ${JSON.stringify(n)}`, withValue('/dataset/name', n), { status: 400, code: 'invalid_name', param: '/dataset/name' });
  add(`source reference ${JSON.stringify(n)}`, withValue('/source/checkpoint', n), { status: 400, code: 'invalid_name', param: '/source/checkpoint' });
}
// `public` is a valid name but the shared namespace's route segment: no new object of one's own may take it.
add('output name "public" (reserved)', withValue('/output/checkpoint', 'public'), { status: 400, code: 'reserved_name', param: '/output/checkpoint' });
add('dataset of another namespace', withValue('/dataset/name', 'a/b'), { status: 422, code: 'dataset_not_found', param: '/dataset/name' });
add('source of another namespace', withValue('/source/checkpoint', 'a/b'), { status: 422, code: 'checkpoint_not_found', param: '/source/checkpoint' });

// Invalid and unsafe regexes.
for (const re of ['(', '[a-', '*', 'a{2,1}', '(?<x', '\\']) {
  add(`restore regex ${re}`, withValue('/source/restore', re), { status: 400, code: 'invalid_regex', param: '/source/restore' });
  add(`freeze regex ${re}`, withValue('/freeze', re), { status: 400, code: 'invalid_regex', param: '/freeze' });
}
// RE2 (linear time) cannot express lookaround, backreferences, atomic groups or possessive quantifiers.
add('lookahead restore regex', withValue('/source/restore', '^(?!dec_)'), { status: 400, code: 'regex_unsupported', param: '/source/restore' });
add('lookbehind freeze regex', withValue('/freeze', '(?<=enc_)conv'), { status: 400, code: 'regex_unsupported', param: '/freeze' });
add('backreference lr regex', withValue('/training/lrMultipliers', { '(enc)_\\1': 0.1 }), { status: 400, code: 'regex_unsupported', param: '/training/lrMultipliers/(enc)_\\1' });
add('possessive freeze regex', withValue('/freeze', 'enc_conv\\d++'), { status: 400, code: 'regex_unsupported', param: '/freeze' });
// Catastrophic for a backtracking engine, linear for RE2: just a regex that selects nothing here.
add('catastrophic-looking restore regex', withValue('/source/restore', '(a+)+$'), { status: 422, code: 'restore_matches_nothing', param: '/source/restore' });
add('too long regex', withValue('/source/restore', 'a'.repeat(300)), { status: 400 });

// Rules between fields.
add('pretrain with source', withValue('/type', 'pretrain'), { status: 400 });
add('pretrain without architecture', { ...withValue('/type', 'pretrain'), source: undefined, model: undefined }, { status: 400 });
add('transfer with architecture', withValue('/model', { architecture: 'conv-autoencoder' }), { status: 400, param: '/model/architecture' });
add('dense without units', withValue('/model/head/0/units', undefined), { status: 400, code: 'missing_field', param: '/model/head/0/units' });
add('dropout without rate', withValue('/model/head', [{ type: 'dropout' }, { type: 'dense', units: 10 }]), { status: 400, param: '/model/head/0/rate' });
add('dropout with units', withValue('/model/head', [{ type: 'dropout', rate: 0.5, units: 3 }, { type: 'dense', units: 10 }]), { status: 400, param: '/model/head/0/units' });
add('duplicate head names', withValue('/model/head', [{ type: 'dense', units: 5, name: 'a' }, { type: 'dense', units: 10, name: 'a' }]), { status: 400, code: 'duplicate_layer_name' });
add('early stopping without validation', { ...withValue('/dataset/validationSplit', 0), training: { epochs: 2, earlyStopping: { patience: 1 } } }, { status: 400, param: '/training/earlyStopping' });
add('select best without validation', { ...withValue('/dataset/validationSplit', 0), output: { checkpoint: 'out', select: 'best' } }, { status: 400, param: '/output/select' });

// Things that do not exist or do not fit (422) and taken names (409).
add('missing source checkpoint', withValue('/source/checkpoint', 'nope'), { status: 422, code: 'checkpoint_not_found', param: '/source/checkpoint' });
add('missing dataset', withValue('/dataset/name', 'nope'), { status: 422, code: 'dataset_not_found', param: '/dataset/name' });
add('restore matches nothing', withValue('/source/restore', '^decoder'), { status: 422, code: 'restore_matches_nothing', param: '/source/restore' });
add('freeze matches nothing', withValue('/freeze', '^nothing_here'), { status: 422, code: 'freeze_matches_nothing', param: '/freeze' });
add('freeze unknown layer', withValue('/freeze', ['enc_conv1', 'enc_conv9']), { status: 422, code: 'unknown_layer', param: '/freeze/1' });
add('cut unknown layer', withValue('/model/cut', 'enc_nothing'), { status: 422, code: 'unknown_layer', param: '/model/cut' });
add('head name clashes with source', withValue('/model/head/0/name', 'enc_conv1'), { status: 422, code: 'duplicate_layer_name' });
add('output exists', withValue('/output/checkpoint', 'src'), { status: 409, code: 'checkpoint_exists', param: '/output/checkpoint' });

describe('POST /v1/jobs rejects malformed specs', () => {
  let env: TestEnv;
  let t: TestApp;

  beforeAll(async () => {
    env = await makeTestEnv({ JOB_SPEC_MAX_BYTES: '65536' });
    await writeMnistDataset(env.dataDir, 'mnist', { train: 50, test: 10 });
    await writeTinyCheckpoint(env.dataDir, 'src');
    t = await buildTestApp(env);
  });

  afterAll(async () => {
    await t.close();
    await env.cleanup();
  });

  it('has at least 100 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(100);
  });

  it('accepts the valid spec the cases are derived from', async () => {
    const res = await request(t.app.server).post('/v1/jobs').send(VALID);
    expect(res.status).toBe(202);
    expect(res.headers.location).toBe(`/v1/jobs/${res.body.id}`);
    await t.services.queue.queue.obliterate({ force: true });
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const res = await request(t.app.server).post('/v1/jobs').set('content-type', 'application/json').send(JSON.stringify(c.body));
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    if (c.status) expect(res.status).toBe(c.status);
    expectErrorShape(res.body);
    if (c.code) expect(res.body.error.code).toBe(c.code);
    if (c.param !== undefined) expect(res.body.error.param).toBe(c.param);
  });

  it.each([
    ['invalid JSON', '{"type": ', 'application/json', 400],
    ['empty JSON body', '', 'application/json', 400],
    ['text/plain', 'type=transfer', 'text/plain', 415],
    ['form encoded', 'type=transfer', 'application/x-www-form-urlencoded', 415],
    ['oversize body', JSON.stringify({ ...VALID, pad: 'x'.repeat(70000) }), 'application/json', 413],
  ])('%s', async (_name, raw, type, status) => {
    const res = await request(t.app.server).post('/v1/jobs').set('content-type', type as string).send(raw as string);
    expect(res.status).toBe(status);
    expectErrorShape(res.body);
  });

  it('created no job for any rejected submission', async () => {
    const res = await request(t.app.server).get('/v1/jobs?limit=100');
    expect(res.status).toBe(200);
    expect(res.body.data).toHaveLength(1); // only the valid one
  });
});

function expectErrorShape(body: unknown): void {
  const err = (body as { error?: Record<string, unknown> }).error;
  expect(err).toBeDefined();
  expect(err!.code).toMatch(/^[a-z][a-z0-9_]*$/);
  expect(typeof err!.message).toBe('string');
  expect((err!.message as string).length).toBeGreaterThan(10);
  expect(err!.param === null || (typeof err!.param === 'string' && (err!.param as string).startsWith('/'))).toBe(true);
}

describe('POST /v1/plans', () => {
  let env: TestEnv;
  let t: TestApp;

  beforeAll(async () => {
    env = await makeTestEnv();
    await writeMnistDataset(env.dataDir, 'mnist', { train: 50, test: 10 });
    await writeTinyCheckpoint(env.dataDir, 'src');
    t = await buildTestApp(env);
  });

  afterAll(async () => {
    await t.close();
    await env.cleanup();
  });

  it('describes the target network without queueing anything', async () => {
    const res = await request(t.app.server).post('/v1/plans').send(VALID);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ valid: true, errors: [] });
    const { plan } = res.body;
    expect(plan.layers.map((l: { name: string }) => l.name)).toEqual(['enc_conv1', 'enc_pool1', 'enc_flatten', 'head_fc']);
    expect(plan.layers[0]).toMatchObject({ className: 'Conv2D', outputShape: [null, 24, 24, 4], params: 104, restored: true, frozen: true, lrMultiplier: null });
    expect(plan.layers[3]).toMatchObject({ className: 'Dense', outputShape: [null, 10], params: 576 * 10 + 10, restored: false, frozen: false, lrMultiplier: 1 });
    expect(plan.weights).toEqual({ restored: ['enc_conv1/kernel', 'enc_conv1/bias'], skipped: [], mismatched: [] });
    expect(plan.params).toEqual({ total: 104 + 5770, trainable: 5770, frozen: 104 });
    expect(plan.featureCache).toEqual({ applies: true, boundaryLayer: 'enc_flatten' });
    expect((await request(t.app.server).get('/v1/jobs')).body.data).toHaveLength(0);
  });

  it('warns about an lrMultipliers rule that matches no layer', async () => {
    const res = await request(t.app.server).post('/v1/plans').send({ ...VALID, training: { ...VALID.training, lrMultipliers: { '^decoder': 0.5 } } });
    expect(res.body.valid).toBe(true);
    expect(res.body.warnings).toEqual([expect.stringContaining('"^decoder"')]);
  });

  it('lists every error a job would hit, with the same codes', async () => {
    const res = await request(t.app.server)
      .post('/v1/plans')
      .send({ ...VALID, freeze: ['enc_conv1', 'nope'], output: { checkpoint: 'src' } });
    expect(res.status).toBe(200);
    expect(res.body.valid).toBe(false);
    expect(res.body.errors.map((e: { code: string; param: string }) => [e.code, e.param])).toEqual([
      ['unknown_layer', '/freeze/1'],
      ['checkpoint_exists', '/output/checkpoint'],
    ]);
  });

  it('finds what only building the network reveals, and POST /v1/jobs refuses it with the same code', async () => {
    const wrongHead = { ...VALID, model: { cut: 'enc_flatten', head: [{ type: 'dense', units: 4, activation: 'softmax' }] } };
    const plan = await request(t.app.server).post('/v1/plans').send(wrongHead);
    expect(plan.body.errors).toEqual([expect.objectContaining({ code: 'output_classes_mismatch', param: '/model/head/0/units' })]);
    const job = await request(t.app.server).post('/v1/jobs').send(wrongHead);
    expect(job.status).toBe(422);
    expect(job.body.error).toMatchObject({ code: 'output_classes_mismatch', param: '/model/head/0/units' });
  });
});
