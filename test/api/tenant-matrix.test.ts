import { randomBytes, randomUUID } from 'node:crypto';
import request from 'supertest';
import { buildTestApp, type TestApp } from '../helpers/app';
import { writeTinyCheckpoint } from '../helpers/checkpoint';
import { makeTestEnv, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';

/**
 * The cross-tenant matrix of issue 11: every /v1 operation the OpenAPI document declares ×
 * { own key, another tenant's key, reader key, no key, revoked key, malformed header }, against
 * objects of two tenants, with real API keys (the key store in Redis, the real authenticator).
 *
 * What must hold:
 *   - no key, a revoked key or a malformed header: 401 with WWW-Authenticate, on every route;
 *   - a reader: 403 on every route that writes, never on one that reads;
 *   - another tenant's key asking for tenant acme's object (job, checkpoint, dataset, key, tenant
 *     record, or a name in a spec) gets exactly what it gets for a name that exists nowhere: same
 *     status, same headers, same body once the name itself is swapped;
 *   - lists never show another tenant's objects;
 *   - the owner reads its own objects.
 * A route added to the API without a row here fails the first test.
 */
const TENANT = 'acme';
const OTHER = 'beta';
const ADMIN_KEY = `gk_${randomBytes(32).toString('base64url')}`;
const SECRET_CHECKPOINT = 'secret-model';
const SECRET_DATASET = 'secret-data';
const MISSING = 'no-such-thing';

type Caller = 'own' | 'other' | 'reader' | 'none' | 'revoked' | 'malformed';
type Method = 'get' | 'post' | 'put' | 'delete';

interface Row {
  /** `METHOD /v1/path` as the OpenAPI document writes it. */
  operation: string;
  /** The path with acme's object, and with a name that exists nowhere (null: no tenant object in the request). */
  target: { path: string; body?: object } | null;
  missing?: { path: string; body?: object };
  /** The string that differs between the two (swapped before comparing bodies). */
  swap?: [string, string];
  /** Whatever `own` may call without changing the fixture (reads; the rest only checks auth). */
  ownReads?: boolean;
  /** Reader may call it (reads, dry runs, predictions). */
  readOnly: boolean;
  /** Admin-only: members and readers get 403. */
  adminOnly?: boolean;
}

const pretrainSpec = (dataset: string, output: string) => ({
  type: 'pretrain',
  model: { architecture: 'conv-classifier', options: { filters: [2] } },
  dataset: { name: dataset },
  training: { epochs: 1, batchSize: 64 },
  output: { checkpoint: output },
});
const transferSpec = (source: string, output: string) => ({
  type: 'transfer',
  source: { checkpoint: source },
  model: { cut: 'enc_flatten', head: [{ type: 'dense', units: 10, activation: 'softmax', name: 'head' }] },
  dataset: { name: 'digits' },
  training: { epochs: 1 },
  output: { checkpoint: output },
});
const INSTANCE = [Array.from({ length: 28 * 28 }, () => 0)];

describe('tenant isolation matrix (real API keys)', () => {
  let env: TestEnv;
  let api: TestApp;
  const keys = {} as Record<'own' | 'other' | 'reader' | 'revoked', { id: string; key: string }>;
  let jobId = '';
  const missingJob = randomUUID();
  const missingKeyId = `key_${randomBytes(8).toString('hex')}`;
  let rows: Row[] = [];

  const auth = (caller: Caller): Record<string, string> => {
    switch (caller) {
      case 'none':
        return {};
      case 'malformed':
        return { authorization: `Token ${keys.own.key}` };
      default:
        return { authorization: `Bearer ${keys[caller].key}` };
    }
  };

  const call = (operation: string, path: string, caller: Caller | 'admin', body?: object) => {
    const method = operation.split(' ')[0].toLowerCase() as Method;
    const req = request(api.app.server)[method](path).set(caller === 'admin' ? { authorization: `Bearer ${ADMIN_KEY}`, 'graft-tenant': TENANT } : auth(caller));
    return body ? req.send(body) : req;
  };

  /** Headers and body with what may differ between two calls (time, own rate budget, the name asked for) taken out. */
  const comparable = (res: request.Response, swap?: string) => {
    const headers = { ...res.headers };
    for (const h of ['date', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'content-length', 'etag']) delete headers[h];
    const text = swap ? res.text.split(swap).join('<name>') : res.text;
    return { status: res.status, headers, text };
  };

  beforeAll(async () => {
    env = await makeTestEnv({ GRAFT_AUTH: 'required', GRAFT_ADMIN_KEY: ADMIN_KEY, RATE_LIMIT_PER_MINUTE: '0', TENANT_UPLOADS_PER_MINUTE: '0' });
    for (const tenant of [TENANT, OTHER]) {
      await writeMnistDataset(env.dataDir, 'digits', { train: 60, test: 20 }, tenant);
      await writeTinyCheckpoint(env.dataDir, 'seed', tenant);
    }
    // Objects only tenant acme has.
    await writeMnistDataset(env.dataDir, SECRET_DATASET, { train: 60, test: 20 }, TENANT);
    await writeTinyCheckpoint(env.dataDir, SECRET_CHECKPOINT, TENANT);
    api = await buildTestApp(env);
    const admin = { authorization: `Bearer ${ADMIN_KEY}` };
    const make = async (tenant: string, role: string, name: string) => {
      const res = await request(api.app.server).post('/v1/keys').set(admin).send({ tenant, role, name });
      expect(res.status).toBe(201);
      return { id: res.body.id as string, key: res.body.key as string };
    };
    keys.own = await make(TENANT, 'member', 'acme-ci');
    keys.reader = await make(TENANT, 'reader', 'acme-dashboard');
    keys.other = await make(OTHER, 'member', 'beta-ci');
    keys.revoked = await make(TENANT, 'member', 'acme-old');
    expect((await request(api.app.server).delete(`/v1/keys/${keys.revoked.id}`).set(admin)).status).toBe(204);
    const job = await request(api.app.server).post('/v1/jobs').set(auth('own')).send(pretrainSpec(SECRET_DATASET, 'acme-out'));
    expect(job.status).toBe(202);
    jobId = job.body.id;

    const job_ = (suffix = '') => ({ target: { path: `/v1/jobs/${jobId}${suffix}` }, missing: { path: `/v1/jobs/${missingJob}${suffix}` }, swap: [jobId, missingJob] as [string, string] });
    const named = (prefix: string, name: string, suffix = '') => ({ target: { path: `${prefix}/${name}${suffix}` }, missing: { path: `${prefix}/${MISSING}${suffix}` }, swap: [name, MISSING] as [string, string] });
    rows = [
      { operation: 'POST /v1/jobs', target: { path: '/v1/jobs', body: pretrainSpec(SECRET_DATASET, 'out-1') }, missing: { path: '/v1/jobs', body: pretrainSpec(MISSING, 'out-1') }, swap: [SECRET_DATASET, MISSING], readOnly: false },
      { operation: 'GET /v1/jobs', target: null, ownReads: true, readOnly: true },
      { operation: 'POST /v1/plans', target: { path: '/v1/plans', body: transferSpec(`${TENANT}/${SECRET_CHECKPOINT}`, 'out-2') }, missing: { path: '/v1/plans', body: transferSpec(`nobody/${SECRET_CHECKPOINT}`, 'out-2') }, swap: [TENANT, 'nobody'], ownReads: true, readOnly: true },
      { operation: 'POST /v1/jobs/{id}/cancel', ...job_('/cancel'), readOnly: false },
      { operation: 'GET /v1/jobs/{id}/output', ...job_('/output'), readOnly: true },
      { operation: 'GET /v1/jobs/{id}/checkpoints', ...job_('/checkpoints'), ownReads: true, readOnly: true },
      { operation: 'GET /v1/jobs/{id}/events', ...job_('/events'), ownReads: true, readOnly: true },
      { operation: 'GET /v1/jobs/{id}', ...job_(), ownReads: true, readOnly: true },
      { operation: 'GET /v1/checkpoints', target: null, ownReads: true, readOnly: true },
      { operation: 'POST /v1/checkpoints', target: null, readOnly: false },
      { operation: 'GET /v1/checkpoints/{name}', ...named('/v1/checkpoints', SECRET_CHECKPOINT), ownReads: true, readOnly: true },
      { operation: 'DELETE /v1/checkpoints/{name}', ...named('/v1/checkpoints', SECRET_CHECKPOINT), readOnly: false },
      { operation: 'GET /v1/checkpoints/{name}/archive', ...named('/v1/checkpoints', SECRET_CHECKPOINT, '/archive'), ownReads: true, readOnly: true },
      { operation: 'GET /v1/checkpoints/public/{name}', target: null, readOnly: true },
      { operation: 'DELETE /v1/checkpoints/public/{name}', target: null, readOnly: false, adminOnly: true },
      { operation: 'GET /v1/checkpoints/public/{name}/archive', target: null, readOnly: true },
      { operation: 'POST /v1/checkpoints/{name}/publish', ...named('/v1/checkpoints', SECRET_CHECKPOINT, '/publish'), readOnly: false, adminOnly: true },
      {
        operation: 'POST /v1/checkpoints/{name}/predict',
        target: { path: `/v1/checkpoints/${SECRET_CHECKPOINT}/predict`, body: { instances: INSTANCE } },
        missing: { path: `/v1/checkpoints/${MISSING}/predict`, body: { instances: INSTANCE } },
        swap: [SECRET_CHECKPOINT, MISSING],
        ownReads: true,
        readOnly: true,
      },
      { operation: 'POST /v1/checkpoints/public/{name}/predict', target: null, readOnly: true },
      { operation: 'GET /v1/datasets', target: null, ownReads: true, readOnly: true },
      { operation: 'POST /v1/datasets', target: null, readOnly: false },
      { operation: 'GET /v1/datasets/{name}', ...named('/v1/datasets', SECRET_DATASET), ownReads: true, readOnly: true },
      { operation: 'DELETE /v1/datasets/{name}', ...named('/v1/datasets', SECRET_DATASET), readOnly: false },
      { operation: 'GET /v1/datasets/public/{name}', target: null, readOnly: true },
      { operation: 'DELETE /v1/datasets/public/{name}', target: null, readOnly: false, adminOnly: true },
      { operation: 'POST /v1/datasets/{name}/publish', ...named('/v1/datasets', SECRET_DATASET, '/publish'), readOnly: false, adminOnly: true },
      { operation: 'POST /v1/keys', target: null, readOnly: false, adminOnly: true },
      { operation: 'GET /v1/keys', target: null, ownReads: true, readOnly: true },
      { operation: 'DELETE /v1/keys/{id}', target: { path: `/v1/keys/${keys.reader.id}` }, missing: { path: `/v1/keys/${missingKeyId}` }, swap: [keys.reader.id, missingKeyId], readOnly: false },
      { operation: 'GET /v1/audit', target: null, readOnly: true, adminOnly: true },
      { operation: 'GET /v1/tenants/{tenant}', ...named('/v1/tenants', TENANT), ownReads: true, readOnly: true },
      { operation: 'PUT /v1/tenants/{tenant}/quotas', ...named('/v1/tenants', TENANT, '/quotas'), readOnly: false, adminOnly: true },
    ];
  });

  afterAll(async () => {
    await api?.close();
    await env?.cleanup();
  });

  const pathOf = (row: Row) => row.target?.path ?? row.operation.split(' ')[1].replace('{name}', 'anything').replace('{id}', missingJob).replace('{tenant}', TENANT);

  it('covers every /v1 operation of the OpenAPI document', async () => {
    const doc = (await request(api.app.server).get('/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const declared = Object.entries(doc.paths).flatMap(([p, ops]) => (p.startsWith('/v1') ? Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`) : []));
    expect(rows.map((r) => r.operation).sort()).toEqual(declared.sort());
  });

  it('no key, a revoked key and a malformed header get 401 with WWW-Authenticate on every route', async () => {
    for (const row of rows) {
      for (const caller of ['none', 'revoked', 'malformed'] as const) {
        const res = await call(row.operation, pathOf(row), caller, row.target?.body);
        expect({ operation: row.operation, caller, status: res.status }).toEqual({ operation: row.operation, caller, status: 401 });
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
        expect(res.body.error.code).toMatch(/^(missing_api_key|invalid_api_key|malformed_authorization)$/);
        // The same answer for a revoked key as for any unknown one, and never the key itself.
        expect(res.text).not.toContain(keys.revoked.key);
      }
    }
  });

  it('a reader gets 403 on every route that writes, and is never refused for reading', async () => {
    for (const row of rows) {
      const res = await call(row.operation, pathOf(row), 'reader', row.target?.body);
      const refused = !row.readOnly || row.adminOnly;
      if (refused) {
        expect({ operation: row.operation, status: res.status, code: res.body.error?.code }).toEqual({ operation: row.operation, status: 403, code: 'forbidden' });
      } else {
        expect({ operation: row.operation, refused: [401, 403].includes(res.status) }).toEqual({ operation: row.operation, refused: false });
      }
    }
  });

  it("another tenant's key cannot tell acme's objects from names that exist nowhere", async () => {
    for (const row of rows) {
      if (!row.target || !row.missing) continue;
      const theirs = await call(row.operation, row.target.path, 'other', row.target.body);
      const nothing = await call(row.operation, row.missing.path, 'other', row.missing.body);
      expect({ operation: row.operation, ...comparable(theirs, row.swap?.[0]) }).toEqual({ operation: row.operation, ...comparable(nothing, row.swap?.[1]) });
      // Refused (a dry run answers 200 with valid: false and the error it would hit).
      const refused = theirs.status >= 400 || theirs.body?.valid === false;
      expect({ operation: row.operation, refused }).toEqual({ operation: row.operation, refused: true });
    }
    // And acme's objects are all still there.
    for (const path of [`/v1/jobs/${jobId}`, `/v1/checkpoints/${SECRET_CHECKPOINT}`, `/v1/datasets/${SECRET_DATASET}`]) {
      expect((await call('GET', path, 'own')).status).toBe(200);
    }
    expect((await request(api.app.server).get('/v1/keys').set({ authorization: `Bearer ${ADMIN_KEY}` })).body.data.map((k: { id: string }) => k.id)).toContain(keys.reader.id);
  });

  it("lists show a tenant its own objects only, and the owner reads its own", async () => {
    for (const path of ['/v1/jobs', '/v1/checkpoints', '/v1/datasets', '/v1/keys']) {
      const theirs = await call('GET', path, 'other');
      expect(theirs.status).toBe(200);
      for (const secret of [jobId, SECRET_CHECKPOINT, SECRET_DATASET, keys.own.id, keys.reader.id]) expect({ path, leaks: theirs.text.includes(secret) }).toEqual({ path, leaks: false });
    }
    const mine = await call('GET', '/v1/jobs', 'own');
    expect(mine.body.data.map((j: { id: string }) => j.id)).toContain(jobId);
    for (const row of rows.filter((r) => r.ownReads)) {
      const res = await call(row.operation, pathOf(row), 'own', row.target?.body);
      expect({ operation: row.operation, status: res.status }).toEqual({ operation: row.operation, status: 200 });
    }
  });

  it('predictions resolve the name in the caller\'s tenant, and public checkpoints serve every tenant', async () => {
    const body = { instances: INSTANCE };
    // acme predicts with its own checkpoint; beta, asking for the same name, gets what a missing name gets.
    const mine = await call('POST /v1/checkpoints/{name}/predict', `/v1/checkpoints/${SECRET_CHECKPOINT}/predict`, 'own', body);
    expect(mine.status).toBe(200);
    expect(mine.body.checkpoint).toBe(SECRET_CHECKPOINT);
    // An admin shares it; then beta predicts with public/<name>, never with the bare name.
    const published = await call('POST /v1/checkpoints/{name}/publish', `/v1/checkpoints/${SECRET_CHECKPOINT}/publish`, 'admin', { as: 'shared-model' });
    expect(published.status).toBe(201);
    const shared = await call('POST /v1/checkpoints/public/{name}/predict', '/v1/checkpoints/public/shared-model/predict', 'other', body);
    expect(shared.status).toBe(200);
    expect(shared.body.checkpoint).toBe('public/shared-model');
    expect(shared.body.predictions[0].probability).toBeCloseTo(mine.body.predictions[0].probability, 6);
    expect((await call('POST /v1/checkpoints/{name}/predict', '/v1/checkpoints/shared-model/predict', 'other', body)).status).toBe(404);
    const gone = await call('POST /v1/checkpoints/public/{name}/predict', `/v1/checkpoints/public/${MISSING}/predict`, 'other', body);
    expect(gone.status).toBe(404);
    expect(gone.body.error.message).toContain(`public/${MISSING}`);
  });
});
