import { promises as fs } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import type { AuditEntry } from '../../src/auth/audit';
import { DataLayout } from '../../src/storage/layout';
import { QUOTA_RECHECK_MS } from '../../src/tenants/quotas';
import { writeMnistIdx } from '../../scripts/mnist-idx';
import { buildTestApp, type TestApp } from '../helpers/app';
import { tarGz } from '../helpers/archives';
import { writeTinyCheckpoint } from '../helpers/checkpoint';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';
import { TestAuthenticator, testKey } from '../helpers/test-auth';

/**
 * Datasets and checkpoints belong to tenants (issue 11): two tenants with the same names each see
 * only their own; another tenant's object is answered exactly like a name that does not exist
 * (compared byte for byte with the answer once nobody has it); the public namespace is readable by
 * all and written only by admins (publish); storage and upload quotas hold across API processes;
 * a volume written before tenants is readable as the default tenant.
 */

const ACME = testKey('acme', 'member');
const BETA = testKey('beta', 'member');
const ACME_ADMIN = testKey('acme', 'admin');
const BETA_READER = testKey('beta', 'reader');

/** What a client can observe of a response, minus what differs between any two requests. */
function observable(res: request.Response) {
  // Time and the caller's own rate-limit countdown say nothing about the object.
  const { date: _date, 'x-ratelimit-remaining': _remaining, 'x-ratelimit-reset': _reset, ...headers } = res.headers as Record<string, string>;
  return { status: res.status, headers, body: res.text };
}

const transferSpec = (source: string, dataset: string, output: string) => ({
  type: 'transfer',
  source: { checkpoint: source },
  model: { cut: 'enc_flatten', head: [{ type: 'dense', units: 10, activation: 'softmax' }] },
  dataset: { name: dataset },
  training: { epochs: 1, batchSize: 16 },
  output: { checkpoint: output },
});

async function png(i: number): Promise<Buffer> {
  const px = Buffer.alloc(28 * 28);
  for (let k = 4; k < 24; k++) px[(6 + i) * 28 + k] = 255;
  return sharp(px, { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
}

async function smallDatasetArchive(): Promise<Buffer> {
  const files = [];
  for (const cls of ['h', 'v']) for (let i = 0; i < 3; i++) files.push({ name: `train/${cls}/${i}.png`, content: await png(i) });
  return tarGz(files);
}

describe('tenant storage: isolation, public namespace, publish', () => {
  let env: TestEnv;
  let t: TestApp;
  const audit: AuditEntry[] = [];
  const as = (key: string) => ({
    get: (url: string) => request(t.app.server).get(url).set('authorization', key),
    del: (url: string) => request(t.app.server).delete(url).set('authorization', key),
    post: (url: string, body?: object) => request(t.app.server).post(url).set('authorization', key).send(body),
  });

  beforeAll(async () => {
    env = await makeTestEnv();
    // Same names in both tenants, different content (so a leak would show).
    await writeMnistDataset(env.dataDir, 'mnist', { train: 60, test: 20 }, 'acme');
    await writeMnistDataset(env.dataDir, 'mnist', { train: 80, test: 10 }, 'beta');
    await writeTinyCheckpoint(env.dataDir, 'enc', 'acme');
    await writeTinyCheckpoint(env.dataDir, 'enc', 'beta');
    await writeTinyCheckpoint(env.dataDir, 'acme-only', 'acme');
    await writeMnistDataset(env.dataDir, 'acme-data', { train: 40, test: 10 }, 'acme');
    t = await buildTestApp(env, { auth: new TestAuthenticator(), audit: { record: async (e) => void audit.push(e) } });
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    await env?.cleanup();
  });

  it('each tenant lists and describes only its own objects, with `tenant` on every item', async () => {
    const a = await as(ACME).get('/v1/datasets');
    const b = await as(BETA).get('/v1/datasets');
    expect(a.body.data.map((d: { name: string; tenant: string }) => `${d.tenant}/${d.name}`)).toEqual(['acme/acme-data', 'acme/mnist']);
    expect(b.body.data.map((d: { name: string; tenant: string }) => `${d.tenant}/${d.name}`)).toEqual(['beta/mnist']);
    expect((await as(ACME).get('/v1/datasets/mnist')).body.splits.train.count).toBe(60);
    expect((await as(BETA).get('/v1/datasets/mnist')).body.splits.train.count).toBe(80);
    const ca = await as(ACME).get('/v1/checkpoints');
    const cb = await as(BETA).get('/v1/checkpoints');
    expect(ca.body.data.map((c: { name: string }) => c.name)).toEqual(['acme-only', 'enc']);
    expect(cb.body.data.map((c: { name: string; tenant: string }) => [c.name, c.tenant])).toEqual([['enc', 'beta']]);
    expect((await as(BETA).get('/v1/checkpoints/enc')).body.tenant).toBe('beta');
  });

  it("another tenant's checkpoint or dataset is byte-identical to a missing one: describe, archive, delete, use in a plan or a job", async () => {
    // Beta's view of acme's objects now, and again once acme has deleted them (nobody has them).
    const probes = () =>
      Promise.all([
        as(BETA).get('/v1/checkpoints/acme-only'),
        as(BETA).get('/v1/checkpoints/acme-only/archive'),
        as(BETA).get('/v1/datasets/acme-data'),
        as(BETA_READER).get('/v1/checkpoints/acme-only'),
        as(BETA).post('/v1/plans', transferSpec('acme-only', 'mnist', 'out-1')),
        as(BETA).post('/v1/plans', transferSpec('acme/acme-only', 'acme/acme-data', 'out-1')),
        as(BETA).post('/v1/jobs', transferSpec('acme/acme-only', 'mnist', 'out-1')),
        as(BETA).post('/v1/jobs', transferSpec('enc', 'acme/acme-data', 'out-1')),
      ]);
    const deleteProbes = () => Promise.all([as(BETA).del('/v1/checkpoints/acme-only'), as(BETA).del('/v1/datasets/acme-data')]);
    const before = (await probes()).map(observable);
    const beforeDelete = (await deleteProbes()).map(observable);

    expect(before.map((r) => r.status)).toEqual([404, 404, 404, 404, 200, 200, 422, 422]);
    expect(JSON.parse(before[0].body).error.code).toBe('checkpoint_not_found');
    expect(JSON.parse(before[2].body).error.code).toBe('dataset_not_found');
    const plan = JSON.parse(before[5].body);
    expect(plan.valid).toBe(false);
    expect(plan.errors.map((e: { code: string }) => e.code).sort()).toEqual(['checkpoint_not_found', 'dataset_not_found']);
    expect(beforeDelete.map((r) => r.status)).toEqual([404, 404]);

    // Acme really had them.
    expect((await as(ACME).get('/v1/checkpoints/acme-only')).status).toBe(200);
    expect((await as(ACME).del('/v1/checkpoints/acme-only')).status).toBe(204);
    expect((await as(ACME).del('/v1/datasets/acme-data')).status).toBe(204);

    expect((await probes()).map(observable)).toEqual(before);
    expect((await deleteProbes()).map(observable)).toEqual(beforeDelete);
  }, 60_000);

  it('names a spec may use: its own `<name>`, `<own tenant>/<name>`, `public/<name>`; the output is always its own', async () => {
    const own = await as(BETA).post('/v1/plans', transferSpec('enc', 'mnist', 'beta-out'));
    expect([own.status, own.body.valid, own.body.errors]).toEqual([200, true, []]);
    const prefixed = await as(BETA).post('/v1/plans', transferSpec('beta/enc', 'beta/mnist', 'beta-out'));
    expect([prefixed.body.valid, prefixed.body.errors]).toEqual([true, []]);
    // Output names take no namespace.
    const out = await as(BETA).post('/v1/plans', transferSpec('enc', 'mnist', 'public/x'));
    expect([out.status, out.body.error?.code, out.body.error?.param]).toEqual([400, 'invalid_name', '/output/checkpoint']);
    // An output name taken in another tenant is free in this one.
    const free = await as(BETA).post('/v1/plans', transferSpec('enc', 'mnist', 'acme-only-never'));
    expect(free.body.valid).toBe(true);
    await writeTinyCheckpoint(env.dataDir, 'taken-by-acme', 'acme');
    const taken = await as(BETA).post('/v1/plans', transferSpec('enc', 'mnist', 'taken-by-acme'));
    expect(taken.body.errors).toEqual([]);
    const takenOwn = await as(ACME).post('/v1/plans', transferSpec('enc', 'mnist', 'taken-by-acme'));
    expect(takenOwn.body.errors.map((e: { code: string }) => e.code)).toEqual(['checkpoint_exists']);
  }, 60_000);

  it('publish: admin only, atomic copy into public, 409 on a taken name, audited; every tenant reads and trains from it; only admins delete it', async () => {
    expect((await as(ACME).post('/v1/checkpoints/enc/publish', {})).status).toBe(403);
    const missing = await as(ACME_ADMIN).post('/v1/checkpoints/nope/publish', {});
    expect([missing.status, missing.body.error.code]).toEqual([404, 'checkpoint_not_found']);

    const pub = await as(ACME_ADMIN).post('/v1/checkpoints/enc/publish', { as: 'shared-enc' });
    expect([pub.status, pub.body.name, pub.body.tenant]).toEqual([201, 'shared-enc', 'public']);
    const again = await as(ACME_ADMIN).post('/v1/checkpoints/enc/publish', { as: 'shared-enc' });
    expect([again.status, again.body.error.code]).toEqual([409, 'checkpoint_exists']);
    const dpub = await as(ACME_ADMIN).post('/v1/datasets/mnist/publish');
    expect([dpub.status, dpub.body.name, dpub.body.tenant, dpub.body.splits?.train?.count]).toEqual([201, 'mnist', 'public', 60]);
    expect(await fs.readdir(path.join(env.dataDir, '.tmp'))).toEqual([]);

    // Readable by every tenant, at its own paths and in specs.
    for (const key of [BETA, BETA_READER, ACME]) {
      expect((await as(key).get('/v1/checkpoints/public/shared-enc')).body.tenant).toBe('public');
      expect((await as(key).get('/v1/datasets/public/mnist')).body.splits.train.count).toBe(60);
      const listed = await as(key).get('/v1/checkpoints?namespace=public');
      expect(listed.body.data.map((c: { name: string; tenant: string }) => `${c.tenant}/${c.name}`)).toEqual(['public/shared-enc']);
    }
    const archive = await as(BETA).get('/v1/checkpoints/public/shared-enc/archive').buffer(true);
    expect([archive.status, archive.headers['content-type']]).toEqual([200, 'application/gzip']);
    const plan = await as(BETA).post('/v1/plans', transferSpec('public/shared-enc', 'public/mnist', 'from-public'));
    expect([plan.body.valid, plan.body.errors]).toEqual([true, []]);
    // Beta's own `mnist` is not the public one.
    expect((await as(BETA).get('/v1/datasets/mnist')).body.splits.train.count).toBe(80);

    // Nobody but an admin changes it.
    expect((await as(BETA).del('/v1/checkpoints/public/shared-enc')).status).toBe(403);
    expect((await as(BETA).post('/v1/datasets/mnist/publish', { as: 'beta-mnist' })).status).toBe(403);
    expect((await as(ACME).del('/v1/datasets/public/mnist')).status).toBe(403);
    expect((await as(BETA).get('/v1/checkpoints/public/shared-enc')).status).toBe(200);
    expect((await as(ACME_ADMIN).del('/v1/checkpoints/public/shared-enc')).status).toBe(204);
    expect((await as(BETA).get('/v1/checkpoints/public/shared-enc')).status).toBe(404);
    // The tenant's own copy is untouched by deleting the public one (hard links).
    expect((await as(ACME).get('/v1/checkpoints/enc')).status).toBe(200);

    const actions = audit.map((e) => `${e.action} ${e.target.kind} ${e.target.tenant}/${e.target.id} by ${e.actor.tenant}:${e.actor.role}`);
    expect(actions).toEqual(
      expect.arrayContaining([
        'checkpoint.publish checkpoint public/shared-enc by acme:admin',
        'dataset.publish dataset public/mnist by acme:admin',
        'checkpoint.delete checkpoint public/shared-enc by acme:admin',
        'checkpoint.delete checkpoint acme/acme-only by acme:member',
        'dataset.delete dataset acme/acme-data by acme:member',
      ]),
    );
    expect(actions.filter((a) => a.includes('by beta'))).toEqual([]);
  }, 60_000);

  it('uploads land in the caller’s tenant and are audited as created', async () => {
    const archive = await smallDatasetArchive();
    const up = await request(t.app.server).post('/v1/datasets').set('authorization', BETA).field('name', 'lines').attach('file', archive, 'lines.tar.gz');
    expect([up.status, up.body.tenant, up.body.name]).toEqual([201, 'beta', 'lines']);
    await fs.stat(path.join(env.dataDir, 'tenants', 'beta', 'datasets', 'lines'));
    expect((await as(ACME).get('/v1/datasets/lines')).status).toBe(404);
    expect(audit.some((e) => e.action === 'dataset.create' && e.target.tenant === 'beta' && e.target.id === 'lines')).toBe(true);
    // A read-only key cannot upload.
    const ro = await request(t.app.server).post('/v1/datasets').set('authorization', BETA_READER).field('name', 'ro').attach('file', archive, 'ro.tar.gz');
    expect(ro.status).toBe(403);
  }, 60_000);
});

describe('tenant quotas: storage bytes and uploads per minute', () => {
  let env: TestEnv;
  let one: TestApp;
  let two: TestApp;
  let archive: Buffer;

  beforeAll(async () => {
    env = await makeTestEnv({ TENANT_UPLOADS_PER_MINUTE: '3' });
    await writeMnistDataset(env.dataDir, 'mnist', { train: 60, test: 20 }, 'acme');
    // Two API processes' worth of services on one Redis and one volume.
    one = await buildTestApp(env, { auth: new TestAuthenticator() });
    two = await buildTestApp(env, { auth: new TestAuthenticator() });
    archive = await smallDatasetArchive();
  }, 60_000);

  afterAll(async () => {
    await one?.close();
    await two?.close();
    await env?.cleanup();
  });

  const upload = (app: TestApp, key: string, name: string) => request(app.app.server).post('/v1/datasets').set('authorization', key).field('name', name).attach('file', archive, `${name}.tar.gz`);

  it('reports quotas and usage: admins any tenant, members their own, another tenant is a 404', async () => {
    const own = await request(one.app.server).get('/v1/tenants/acme').set('authorization', ACME);
    expect(own.status).toBe(200);
    expect(own.body.quotas).toEqual({ maxStorageBytes: env.config.TENANT_MAX_STORAGE_BYTES, uploadsPerMinute: 3, maxActiveJobs: 0, maxConcurrentJobs: 0 });
    const datasetBytes = (await request(one.app.server).get('/v1/datasets/mnist').set('authorization', ACME)).body.sizeBytes;
    expect(own.body.usage).toEqual({ storageBytes: datasetBytes, datasetBytes, checkpointBytes: 0, uploadsThisMinute: 0 });
    const other = await request(one.app.server).get('/v1/tenants/acme').set('authorization', BETA);
    const nobody = await request(one.app.server).get('/v1/tenants/zeta').set('authorization', BETA);
    expect(other.status).toBe(404);
    expect(observable(other).body.replace('acme', 'zeta')).toBe(observable(nobody).body);
    expect((await request(one.app.server).get('/v1/tenants/beta').set('authorization', ACME_ADMIN)).status).toBe(200);
    expect((await request(one.app.server).put('/v1/tenants/acme/quotas').set('authorization', ACME).send({ maxStorageBytes: 1 })).status).toBe(403);
  });

  it('an upload over the storage quota is 403 quota_exceeded naming the quota and its numbers; a submission while over it too', async () => {
    const used = (await request(one.app.server).get('/v1/tenants/acme').set('authorization', ACME)).body.usage.storageBytes as number;
    const set = await request(two.app.server).put('/v1/tenants/acme/quotas').set('authorization', ACME_ADMIN).send({ maxStorageBytes: used + 100 });
    expect([set.status, set.body.quotas.maxStorageBytes]).toEqual([200, used + 100]);
    // Set through one process, enforced by the other.
    const over = await upload(one, ACME, 'too-big');
    expect([over.status, over.body.error.code, over.body.error.details]).toEqual([403, 'quota_exceeded', expect.objectContaining({ quota: 'maxStorageBytes', used, limit: used + 100 })]);
    expect(over.body.error.message).toContain('TENANT_MAX_STORAGE_BYTES');
    // Another tenant is not affected.
    expect((await upload(one, BETA, 'fits')).status).toBe(201);

    await request(one.app.server).put('/v1/tenants/acme/quotas').set('authorization', ACME_ADMIN).send({ maxStorageBytes: used - 1 });
    const spec = { type: 'pretrain', model: { architecture: 'conv-classifier', options: { filters: [4] } }, dataset: { name: 'mnist' }, training: { epochs: 1 }, output: { checkpoint: 'more' } };
    const job = await request(two.app.server).post('/v1/jobs').set('authorization', ACME).send(spec);
    expect([job.status, job.body.error?.code]).toEqual([403, 'quota_exceeded']);
    const plan = await request(two.app.server).post('/v1/plans').set('authorization', ACME).send(spec);
    expect(plan.body.errors.map((e: { code: string }) => e.code)).toEqual(['quota_exceeded']);
    // null restores the default.
    const reset = await request(one.app.server).put('/v1/tenants/acme/quotas').set('authorization', ACME_ADMIN).send({ maxStorageBytes: null });
    expect(reset.body.quotas.maxStorageBytes).toBe(env.config.TENANT_MAX_STORAGE_BYTES);
    // At once on the process that made the change; on the other within QUOTA_RECHECK_MS (its
    // submission above cached the overrides it read).
    expect((await request(one.app.server).post('/v1/plans').set('authorization', ACME).send(spec)).body.errors).toEqual([]);
    const planOnTwo = async () => (await request(two.app.server).post('/v1/plans').set('authorization', ACME).send(spec)).body.errors.length === 0;
    await waitFor(planOnTwo, QUOTA_RECHECK_MS + 1000, 'the reset quota on the other API process');
  }, 60_000);

  it('two concurrent uploads that fit the storage quota alone but not together, on two API processes: one 201, one 403', async () => {
    const eta = testKey('eta');
    expect((await upload(one, eta, 'first')).status).toBe(201);
    const size = (await request(one.app.server).get('/v1/tenants/eta').set('authorization', eta)).body.usage.storageBytes as number;
    // Room for one more upload and a half: each of the two fits alone.
    await request(one.app.server).put('/v1/tenants/eta/quotas').set('authorization', ACME_ADMIN).send({ maxStorageBytes: Math.floor(size * 2.5) });
    const results = await Promise.all([upload(one, eta, 'second'), upload(two, eta, 'third')]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 403]);
    expect(results.find((r) => r.status === 403)!.body.error.code).toBe('quota_exceeded');
    const usage = (await request(two.app.server).get('/v1/tenants/eta').set('authorization', eta)).body.usage.storageBytes as number;
    expect(usage).toBe(2 * size);
  }, 60_000);

  it('uploads per minute are counted across API processes: 429 quota_exceeded with Retry-After', async () => {
    // Align to the start of a minute window so the 3 uploads and the 4th fall in one window.
    const msIntoMinute = Date.now() % 60_000;
    if (msIntoMinute > 45_000) await new Promise((r) => setTimeout(r, 60_000 - msIntoMinute + 200));
    const results = [await upload(one, testKey('gamma'), 'a'), await upload(two, testKey('gamma'), 'b'), await upload(one, testKey('gamma'), 'c')];
    expect(results.map((r) => r.status)).toEqual([201, 201, 201]);
    const fourth = await upload(two, testKey('gamma'), 'd');
    expect([fourth.status, fourth.body.error.code, fourth.body.error.details]).toEqual([429, 'quota_exceeded', { quota: 'uploadsPerMinute', used: 3, limit: 3 }]);
    const retryAfter = Number(fourth.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(fourth.body.error.message).toContain('TENANT_UPLOADS_PER_MINUTE');
    // Refused uploads are not counted, and other tenants have their own count.
    expect((await request(one.app.server).get('/v1/tenants/gamma').set('authorization', testKey('gamma'))).body.usage.uploadsThisMinute).toBe(3);
    expect((await upload(one, testKey('delta'), 'a')).status).toBe(201);
    // An admin lifts it for the tenant: applies at once on both processes.
    await request(one.app.server).put('/v1/tenants/gamma/quotas').set('authorization', ACME_ADMIN).send({ uploadsPerMinute: 0 });
    expect((await upload(two, testKey('gamma'), 'd')).status).toBe(201);
  }, 120_000);
});

describe('a volume written before tenants', () => {
  let env: TestEnv;
  let t: TestApp | undefined;

  beforeAll(async () => {
    env = await makeTestEnv();
    // The v1 layout: datasets/, checkpoints/ and .meta/datasets/ at the root of DATA_DIR.
    const scratch = path.join(env.dataDir, 'scratch');
    const old = new DataLayout(scratch);
    await writeMnistDataset(scratch, 'mnist', { train: 100, test: 10 });
    await writeTinyCheckpoint(scratch, 'enc');
    await fs.mkdir(path.join(env.dataDir, 'datasets', 'idx-raw'), { recursive: true });
    await writeMnistIdx(path.join(env.dataDir, 'datasets', 'idx-raw'), { train: 20, test: 5 });
    await fs.rename(old.datasetsDir + '/mnist', path.join(env.dataDir, 'datasets', 'mnist'));
    await fs.mkdir(path.join(env.dataDir, 'checkpoints'));
    await fs.rename(old.checkpointsDir + '/enc', path.join(env.dataDir, 'checkpoints', 'enc'));
    await fs.rm(scratch, { recursive: true });
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    await env?.cleanup();
  });

  it('is migrated on start: every object readable as the default tenant, nothing left at the old places', async () => {
    t = await buildTestApp(env);
    const datasets = await request(t.app.server).get('/v1/datasets');
    expect(datasets.body.data.map((d: { name: string; tenant: string; error: unknown }) => [d.tenant, d.name, d.error])).toEqual([
      ['default', 'idx-raw', null],
      ['default', 'mnist', null],
    ]);
    expect((await request(t.app.server).get('/v1/checkpoints/enc')).body.tenant).toBe('default');
    const plan = await request(t.app.server).post('/v1/plans').send(transferSpec('enc', 'mnist', 'after-migration'));
    expect([plan.body.valid, plan.body.errors]).toEqual([true, []]);
    const root = (await fs.readdir(env.dataDir)).sort();
    expect(root).not.toContain('datasets');
    expect(root).not.toContain('checkpoints');
  }, 60_000);
});
