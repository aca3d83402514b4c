import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import request from 'supertest';
import { buildTestApp, type TestApp } from '../helpers/app';
import { tar, tarGz } from '../helpers/archives';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env';

/**
 * The budgets of one upload and of all uploads of a process: files and bytes per request (413),
 * uploads at once (429 + Retry-After), free space left on the volume (507, before the body is
 * read and again once the upload's size is known). Every refusal is in the error shape and leaves
 * nothing behind outside the staging area.
 */
async function listTree(root: string): Promise<string[]> {
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
  return entries.map((e) => path.relative(root, path.join(e.parentPath, e.name)) + (e.isDirectory() ? '/' : '')).sort();
}

async function freeBytes(dir: string): Promise<number> {
  const s = await fs.statfs(dir);
  return s.bavail * s.bsize;
}

function expectError(res: request.Response, status: number, code: string): void {
  expect([res.status, res.body?.error?.code]).toEqual([status, code]);
  expect(typeof res.body.error.message).toBe('string');
  expect(res.body.error).toHaveProperty('param');
}

/** Starts a multipart upload over a raw connection (chunked, no content-length) and leaves it open. */
function openUpload(url: string, name: string): { req: http.ClientRequest; response: Promise<http.IncomingMessage | null> } {
  const req = http.request(`${url}/v1/datasets`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=XyZ' } });
  const response = new Promise<http.IncomingMessage | null>((resolve) => {
    req.on('response', resolve);
    req.on('error', () => resolve(null));
  });
  req.write(`--XyZ\r\ncontent-disposition: form-data; name="name"\r\n\r\n${name}\r\n--XyZ\r\ncontent-disposition: form-data; name="file"; filename="a.tar.gz"\r\ncontent-type: application/gzip\r\n\r\n`);
  return { req, response };
}

async function bodyOf(res: http.IncomingMessage): Promise<{ error: { code: string } }> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

describe('upload budgets', () => {
  let env: TestEnv;
  let t: TestApp;
  let url: string;

  beforeAll(async () => {
    env = await makeTestEnv({
      UPLOAD_MAX_BYTES: String(1024 * 1024),
      UPLOAD_MAX_REQUEST_BYTES: String(256 * 1024),
      UPLOAD_MAX_FILES: '3',
      UPLOADS_MAX_CONCURRENT: '1',
    });
    t = await buildTestApp(env);
    url = await t.app.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await t.close();
    await env.cleanup();
  });

  it('more files than UPLOAD_MAX_FILES → 413 upload_too_large, nothing kept', async () => {
    const before = await listTree(env.dataDir);
    const req = request(t.app.server).post('/v1/checkpoints').field('name', 'many');
    for (let i = 0; i < 4; i++) req.attach('file', Buffer.from('{}'), `f${i}.bin`);
    expectError(await req, 413, 'upload_too_large');
    expect(await listTree(env.dataDir)).toEqual(before);
  });

  it('a request over UPLOAD_MAX_REQUEST_BYTES → 413, whether declared by content-length or only streamed', async () => {
    const before = await listTree(env.dataDir);
    // Each file is within UPLOAD_MAX_BYTES; together they are not.
    const declared = request(t.app.server).post('/v1/checkpoints').field('name', 'fat')
      .attach('file', Buffer.alloc(200 * 1024, 1), 'a.bin').attach('file', Buffer.alloc(200 * 1024, 2), 'b.bin');
    expectError(await declared, 413, 'upload_too_large');

    // Chunked: no content-length to refuse up front, so the bytes are counted as they arrive.
    const { req, response } = openUpload(url, 'streamed');
    req.write(Buffer.alloc(300 * 1024, 3));
    req.end('\r\n--XyZ--\r\n');
    const res = await response;
    expect(res?.statusCode).toBe(413);
    expect((await bodyOf(res!)).error.code).toBe('upload_too_large');
    await waitFor(async () => JSON.stringify(await listTree(env.dataDir)) === JSON.stringify(before), 5000, 'staging cleanup');
  });

  it('a second upload while UPLOADS_MAX_CONCURRENT are in flight → 429 too_many_uploads with Retry-After; the slot frees when the first ends', async () => {
    const first = openUpload(url, 'slow');
    first.req.write(Buffer.alloc(1000));
    // The first upload holds the only slot once the server has started on it.
    const second = await waitFor(async () => {
      const res = await request(t.app.server).post('/v1/datasets').field('name', 'second').attach('file', tarGz([{ name: 'a.txt', content: 'x' }]), 'a.tgz');
      return res.status === 429 ? res : null;
    }, 5000, 'the first upload to take the slot');
    expectError(second, 429, 'too_many_uploads');
    expect(Number(second.headers['retry-after'])).toBeGreaterThan(0);

    first.req.destroy();
    // Released: the next upload is judged on its content again (not an archive → 422).
    await waitFor(async () => {
      const res = await request(t.app.server).post('/v1/datasets').field('name', 'third').attach('file', Buffer.from('plain text'), 'a.txt');
      return res.status === 422 ? res : null;
    }, 5000, 'the slot to be released');
  });
});

describe('free-space floor', () => {
  let env: TestEnv;

  afterEach(async () => {
    await env.cleanup();
  });

  it('an upload when the volume is already under DISK_FREE_FLOOR_BYTES → 507 insufficient_storage before the body is read', async () => {
    env = await makeTestEnv({ DISK_FREE_FLOOR_BYTES: String(2 ** 52) });
    const t = await buildTestApp(env);
    try {
      const before = await listTree(env.dataDir);
      for (const route of ['/v1/datasets', '/v1/checkpoints']) {
        const res = await request(t.app.server).post(route).field('name', 'x').attach('file', tarGz([{ name: 'a.txt', content: 'x' }]), 'a.tgz');
        expectError(res, 507, 'insufficient_storage');
      }
      expect(await listTree(env.dataDir)).toEqual(before);
    } finally {
      await t.close();
    }
  });

  it('an archive that would unpack below the floor → 507 once its size is known, and is deleted', async () => {
    const probe = await makeTestEnv();
    const free = await freeBytes(probe.dataDir);
    await probe.cleanup();
    // 200 MB of zeros in a ~200 KB upload: the request fits; what it unpacks to does not.
    env = await makeTestEnv({ DISK_FREE_FLOOR_BYTES: String(free - 100 * 1024 * 1024) });
    const t = await buildTestApp(env);
    try {
      const before = await listTree(env.dataDir);
      const archive = zlib.gzipSync(tar([{ name: 'train-images-idx3-ubyte', content: Buffer.alloc(200 * 1024 * 1024) }]), { level: 1 });
      const res = await request(t.app.server).post('/v1/datasets').field('name', 'zeros').attach('file', archive, 'z.tar.gz');
      expectError(res, 507, 'insufficient_storage');
      expect(await listTree(env.dataDir)).toEqual(before);
    } finally {
      await t.close();
    }
  }, 60_000);
});
