import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import request from 'supertest';
import { loadModel } from '../../workers/engine/checkpoint-io';
import { buildTestApp, type TestApp } from '../helpers/app';
import { tar, tarGz, zip } from '../helpers/archives';
import { writeTinyCheckpoint } from '../helpers/checkpoint';
import { makeTempDir, makeTestEnv, waitFor, type TestEnv } from '../helpers/env';
import { startProcess, type RunningProcess } from '../helpers/processes';

/**
 * Uploads trust nothing: hostile archives and requests get a 4xx in the error shape, never a 5xx,
 * and write nothing outside DATA_DIR/.tmp (which is empty again afterwards).
 */
const LIMITS = { UPLOAD_MAX_BYTES: String(3 * 1024 * 1024), ARCHIVE_MAX_TOTAL_BYTES: String(6 * 1024 * 1024), ARCHIVE_MAX_ENTRIES: '300', ARCHIVE_MAX_ENTRY_BYTES: String(2 * 1024 * 1024) };

async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(dir, e.name);
      out.push(path.relative(root, p) + (e.isSymbolicLink() ? '@' : e.isDirectory() ? '/' : ''));
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return out.sort();
}

async function png(shape: 'h' | 'v', i: number): Promise<Buffer> {
  const px = Buffer.alloc(28 * 28);
  const o = 6 + (i % 6) * 2;
  for (let k = 4; k < 24; k++) for (let t = 0; t < 3; t++) px[shape === 'h' ? (o + t) * 28 + k : k * 28 + o + t] = 255;
  return sharp(px, { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
}

describe('uploads', () => {
  let sandbox: string;
  let env: TestEnv;
  let t: TestApp;
  const evil = `/tmp/graft-evil-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    sandbox = await makeTempDir('graft-sandbox-');
    // DATA_DIR inside the sandbox: an escape would land next to it.
    const dataDir = path.join(sandbox, 'data');
    await fs.mkdir(dataDir);
    env = await makeTestEnv({ ...LIMITS, DATA_DIR: dataDir });
    await writeTinyCheckpoint(dataDir, 'tiny');
    t = await buildTestApp(env);
  });

  afterAll(async () => {
    await t.close();
    await env.cleanup();
    await fs.rm(sandbox, { recursive: true, force: true });
  });

  const upload = (route: string, name: string | null, file: Buffer | null, filename = 'data.tar.gz') => {
    const req = request(t.app.server).post(route);
    if (name !== null) req.field('name', name);
    if (file) req.attach('file', file, filename);
    return req;
  };

  const gzipBomb = () => {
    // 64 MB of zeros compresses to ~64 KB: the declared size is honest, the total is not allowed.
    const zeros = Buffer.alloc(64 * 1024 * 1024);
    return zlib.gzipSync(tar([{ name: 'train-images-idx3-ubyte', content: zeros }]), { level: 9 });
  };
  const many = tarGz(Array.from({ length: 400 }, (_, i) => ({ name: `f${i}.txt`, content: 'x' })));

  const hostile: [string, () => request.Test][] = [
    ['tar.gz zip-slip ../', () => upload('/v1/datasets', 'slip-tar', tarGz([{ name: '../evil.txt', content: 'pwned' }]))],
    ['tar.gz deep zip-slip', () => upload('/v1/datasets', 'slip-tar2', tarGz([{ name: 'a/b/../../../evil.txt', content: 'pwned' }]))],
    ['tar.gz absolute path', () => upload('/v1/datasets', 'abs-tar', tarGz([{ name: evil, content: 'pwned' }]))],
    ['tar.gz symlink escape', () => upload('/v1/datasets', 'sym-tar', tarGz([{ name: 'link', type: '2', linkname: '/tmp' }, { name: `link/${path.basename(evil)}`, content: 'pwned' }]))],
    ['tar.gz hard link escape', () => upload('/v1/datasets', 'hard-tar', tarGz([{ name: 'hl', type: '1', linkname: '/etc/passwd' }]))],
    ['tar.gz char device', () => upload('/v1/datasets', 'dev-tar', tarGz([{ name: 'null', type: '3' }]))],
    ['tar.gz block device', () => upload('/v1/datasets', 'blk-tar', tarGz([{ name: 'sda', type: '4' }]))],
    ['tar.gz FIFO', () => upload('/v1/datasets', 'fifo-tar', tarGz([{ name: 'pipe', type: '6' }]))],
    ['zip zip-slip ../', () => upload('/v1/datasets', 'slip-zip', zip([{ name: '../evil.txt', content: 'pwned' }]), 'd.zip')],
    ['zip absolute path', () => upload('/v1/datasets', 'abs-zip', zip([{ name: evil, content: 'pwned' }]), 'd.zip')],
    ['zip symlink entry', () => upload('/v1/datasets', 'sym-zip', zip([{ name: 'link', content: '/etc', mode: 0o120777 }]), 'd.zip')],
    ['zip lying size', () => upload('/v1/datasets', 'lie-zip', zip([{ name: 'a.txt', content: 'x'.repeat(5000), declaredSize: 10 }]), 'd.zip')],
    ['gzip bomb by size', () => upload('/v1/datasets', 'bomb', gzipBomb())],
    ['bomb by entry count', () => upload('/v1/datasets', 'many', many)],
    ['truncated tar.gz', () => upload('/v1/datasets', 'trunc-tgz', tarGz([{ name: 'a.txt', content: 'y'.repeat(4000) }]).subarray(0, 60))],
    ['truncated zip', () => upload('/v1/datasets', 'trunc-zip', zip([{ name: 'a.txt', content: 'y'.repeat(4000) }]).subarray(0, 100), 'd.zip')],
    ['random bytes', () => upload('/v1/datasets', 'random', randomBytes(5000))],
    ['empty file', () => upload('/v1/datasets', 'empty', Buffer.alloc(0))],
    ['not a dataset inside', () => upload('/v1/datasets', 'notes', tarGz([{ name: 'readme.txt', content: 'hello' }]))],
    ['undecodable image', () => upload('/v1/datasets', 'badimg', zip([{ name: 'cats/1.png', content: 'not a png' }, { name: 'dogs/1.png', content: 'nor this' }]), 'd.zip')],
    ['oversize upload', () => upload('/v1/datasets', 'huge', randomBytes(4 * 1024 * 1024))],
    ['bad name', () => upload('/v1/datasets', '../escape', tarGz([{ name: 'a.txt', content: 'x' }]))],
    ['name with slash', () => upload('/v1/datasets', 'a/b', tarGz([{ name: 'a.txt', content: 'x' }]))],
    ['missing name', () => upload('/v1/datasets', null, tarGz([{ name: 'a.txt', content: 'x' }]))],
    ['missing file', () => upload('/v1/datasets', 'nofile', null)],
    ['JSON instead of multipart', () => request(t.app.server).post('/v1/datasets').send({ name: 'json' })],
    ['text/plain', () => request(t.app.server).post('/v1/datasets').set('content-type', 'text/plain').send('hello')],
    ['unknown form field', () => request(t.app.server).post('/v1/datasets').field('name', 'x').field('evil', '1').attach('file', tarGz([]), 'a.tgz')],
    ['checkpoint: zip-slip', () => upload('/v1/checkpoints', 'ck-slip', zip([{ name: '../../model.json', content: '{}' }]), 'c.zip')],
    ['checkpoint: missing shard', () => upload('/v1/checkpoints', 'ck-noshard', tarGz([{ name: 'model.json', content: JSON.stringify({ format: 'layers-model', modelTopology: {}, weightsManifest: [{ paths: ['w.bin'], weights: [{ name: 'd/kernel', shape: [2, 2], dtype: 'float32' }] }] }) }]))],
    ['checkpoint: garbage model.json', () => request(t.app.server).post('/v1/checkpoints').field('name', 'ck-garbage').attach('file', Buffer.from('{nope'), 'model.json')],
    ['checkpoint: bad file name', () => request(t.app.server).post('/v1/checkpoints').field('name', 'ck-badname').attach('file', Buffer.from('{}'), '.model.json')],
  ];

  it('has at least 20 hostile cases', () => expect(hostile.length).toBeGreaterThanOrEqual(20));

  it.each(hostile)('%s → 4xx, nothing written outside the temporary area', async (_name, send) => {
    const before = await listTree(sandbox);
    const res = await send();
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.body.error.code).toMatch(/^[a-z_]+$/);
    expect(typeof res.body.error.message).toBe('string');
    expect(await listTree(sandbox)).toEqual(before);
    await expect(fs.stat(evil)).rejects.toThrow();
    await expect(fs.stat(path.join(sandbox, 'evil.txt'))).rejects.toThrow();
  });

  it.each(['/v1/datasets', '/v1/checkpoints'])('%s refuses the reserved name "public" (its routes are the shared namespace)', async (route) => {
    const res = await upload(route, 'public', tarGz([{ name: 'a.txt', content: 'x' }]));
    expect([res.status, res.body.error.code, res.body.error.param]).toEqual([400, 'reserved_name', '/name']);
    expect(res.body.error.message).toMatch(/shared namespace/);
  });

  it('gives the expected codes for the main attacks', async () => {
    const codes = async (send: () => request.Test) => {
      const r = await send();
      return [r.status, r.body.error.code];
    };
    expect(await codes(hostile[0][1])).toEqual([422, 'archive_unsafe_entry']);
    expect(await codes(hostile[12][1])).toEqual([413, 'archive_too_large']);
    expect(await codes(hostile[13][1])).toEqual([413, 'archive_too_many_entries']);
    expect(await codes(hostile[20][1])).toEqual([413, 'upload_too_large']);
    expect(await codes(hostile[21][1])).toEqual([400, 'invalid_name']);
    expect(await codes(hostile[26][1])).toEqual([415, 'unsupported_media_type']);
    const corrupt = await hostile[29][1]();
    expect([corrupt.status, corrupt.body.error.code, corrupt.body.error.param]).toEqual([422, 'checkpoint_corrupt', '/file']);
  });

  it('an upload that dies half-way leaves nothing visible', async () => {
    const addr = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const before = await listTree(sandbox);
    await new Promise<void>((resolve) => {
      const req = http.request(`${addr}/v1/datasets`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=XyZ' } });
      req.on('error', () => resolve());
      req.write('--XyZ\r\ncontent-disposition: form-data; name="name"\r\n\r\nhalf\r\n--XyZ\r\ncontent-disposition: form-data; name="file"; filename="a.tar.gz"\r\ncontent-type: application/gzip\r\n\r\n');
      req.write(randomBytes(200_000));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 300);
    });
    await waitFor(async () => JSON.stringify(await listTree(sandbox)) === JSON.stringify(before), 5000, 'staging cleanup');
    expect((await request(t.app.server).get('/v1/datasets/half')).status).toBe(404);
  });

  it('two concurrent uploads of one name: one 201, one 409', async () => {
    const archive = zip([{ name: 'h/1.png', content: await png('h', 1) }, { name: 'h/2.png', content: await png('h', 2) }, { name: 'v/1.png', content: await png('v', 1) }, { name: 'v/2.png', content: await png('v', 2) }]);
    const results = await Promise.all([upload('/v1/datasets', 'twice', archive, 'a.zip'), upload('/v1/datasets', 'twice', archive, 'a.zip')]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
    expect((await request(t.app.server).get('/v1/datasets/twice')).body.splits.train.count).toBe(4);
  });
});

describe('a zip of PNG class folders, end to end', () => {
  let env: TestEnv;
  let t: TestApp;
  let worker: RunningProcess;

  beforeAll(async () => {
    env = await makeTestEnv();
    await writeTinyCheckpoint(env.dataDir, 'tiny');
    t = await buildTestApp(env);
    worker = startProcess('worker', env.env);
  });

  afterAll(async () => {
    await worker.stop();
    await t.close();
    await env.cleanup();
  });

  it('uploads, trains a transfer job on it, downloads the result and uploads it back under a new name', async () => {
    const entries = [];
    for (const split of ['train', 'test']) for (const cls of ['h', 'v'] as const) for (let i = 0; i < (split === 'train' ? 20 : 6); i++) entries.push({ name: `shapes/${split}/${cls}/${i}.png`, content: await png(cls, i + (split === 'test' ? 1 : 0)) });
    const up = await request(t.app.server).post('/v1/datasets').field('name', 'shapes').attach('file', zip(entries), 'shapes.zip');
    expect(up.status).toBe(201);
    expect(up.body).toMatchObject({ name: 'shapes', format: 'image-folder', classes: ['h', 'v'], splits: { train: { count: 40, perClass: [20, 20] }, test: { count: 12 } } });
    expect((await request(t.app.server).get('/v1/datasets/shapes')).body.splits.train.count).toBe(40);

    const sub = await request(t.app.server).post('/v1/jobs').send({
      type: 'transfer',
      source: { checkpoint: 'tiny', restore: '^enc_conv' },
      freeze: '^enc_conv',
      model: { cut: 'enc_flatten', head: [{ type: 'dense', units: 2, activation: 'softmax', name: 'fc' }] },
      dataset: { name: 'shapes', validationSplit: 0 },
      training: { epochs: 15, batchSize: 8, learningRate: 0.01, seed: 1 },
      output: { checkpoint: 'shapes-clf' },
    });
    expect(sub.body.error ?? null).toBeNull();
    expect(sub.status).toBe(202);
    expect((await request(t.app.server).delete('/v1/datasets/shapes')).status).toBe(409); // in use
    const done = await waitFor(async () => {
      const j = (await request(t.app.server).get(`/v1/jobs/${sub.body.id}`)).body;
      return ['succeeded', 'failed'].includes(j.status) ? j : null;
    }, 120_000, `the job (${worker.output().slice(-800)})`);
    expect(done.error).toBeNull();
    expect(done.result.metrics.test.accuracy).toBeGreaterThan(0.6);

    for (const [accept, ext] of [['application/gzip', 'tar.gz'], ['application/zip', 'zip']]) {
      const archive = await request(t.app.server).get('/v1/checkpoints/shapes-clf/archive').set('accept', accept).buffer(true).parse((res, cb) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => cb(null, Buffer.concat(chunks)));
      });
      expect(archive.status).toBe(200);
      expect(archive.headers['content-disposition']).toContain(`shapes-clf.${ext}`);
      const back = await request(t.app.server).post('/v1/checkpoints').field('name', `shapes-clf-${ext.replace('.', '-')}`).attach('file', archive.body as Buffer, `x.${ext}`);
      expect(back.status).toBe(201);
      expect(back.body.layers.map((l: { name: string }) => l.name)).toContain('fc');
      // The upload is its own author; the job that trained it is kept as lineage, not identity.
      expect(back.body.manifest.jobType).toBe('upload');
      expect(back.body.manifest.jobId).not.toBe(sub.body.id);
      const stored = JSON.parse(await fs.readFile(path.join(env.dataDir, 'tenants', 'default', 'checkpoints', `shapes-clf-${ext.replace('.', '-')}`, 'manifest.json'), 'utf8'));
      expect(stored.lineage).toMatchObject({ jobId: sub.body.id });
    }

    // Both copies predict exactly what the original does.
    await tf.setBackend('cpu');
    const x = tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 3);
    const original = await loadModel(path.join(env.dataDir, 'tenants', 'default', 'checkpoints', 'shapes-clf'));
    const want = await (original.predict(x) as tf.Tensor).data();
    for (const copy of ['shapes-clf-tar-gz', 'shapes-clf-zip']) {
      const m = await loadModel(path.join(env.dataDir, 'tenants', 'default', 'checkpoints', copy));
      expect(Array.from(await (m.predict(x) as tf.Tensor).data())).toEqual(Array.from(want));
      m.dispose();
    }
    original.dispose();

    // Plain multipart files work too.
    const dir = path.join(env.dataDir, 'tenants', 'default', 'checkpoints', 'shapes-clf');
    const req = request(t.app.server).post('/v1/checkpoints').field('name', 'from-files');
    for (const f of await fs.readdir(dir)) if (f !== 'manifest.json') req.attach('file', await fs.readFile(path.join(dir, f)), f);
    expect((await req).status).toBe(201);

    expect((await request(t.app.server).delete('/v1/datasets/shapes')).status).toBe(204);
    expect((await request(t.app.server).get('/v1/datasets/shapes')).status).toBe(404);
    expect((await request(t.app.server).delete('/v1/checkpoints/from-files')).status).toBe(204);
    expect((await request(t.app.server).delete('/v1/checkpoints/from-files')).status).toBe(404);
  }, 180_000);
});
