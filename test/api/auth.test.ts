import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { buildApp } from '../../src/api/app';
import { createServices, type Services } from '../../src/api/services';
import { adminKeyPath } from '../../src/auth/admin-key';
import { createApiLogger } from '../../src/auth/redact';
import { buildTestApp, type TestApp } from '../helpers/app';
import { makeTestEnv, TEST_REDIS_URL, type TestEnv } from '../helpers/env';

/** Authentication, roles, keys, audit, rate limits and redaction with GRAFT_AUTH=required (issue 11). */

const ADMIN_KEY = 'bootstrap-admin-key-for-tests-0123456789abcdef';
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

interface CreatedKey {
  id: string;
  key: string;
  tenant: string;
  role: string;
  name: string;
  createdAt: string;
}

async function createKey(app: FastifyInstance, body: { tenant: string; role: string; name: string }, as = ADMIN_KEY): Promise<CreatedKey> {
  const res = await app.inject({ method: 'POST', url: '/v1/keys', headers: bearer(as), payload: body });
  expect(res.statusCode).toBe(201);
  return res.json();
}

/** Every string stored under the queue's namespace: hashes, strings, zsets, streams. */
async function dumpNamespace(queueName: string): Promise<string> {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    const keys = await redis.keys(`graft:${queueName}:*`);
    const parts: string[] = [];
    for (const key of keys) {
      const type = await redis.type(key);
      parts.push(key);
      if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === 'string') parts.push(String(await redis.get(key)));
      else if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(key, '0', '-1')));
      else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
      else if (type === 'set') parts.push(JSON.stringify(await redis.smembers(key)));
      else if (type === 'list') parts.push(JSON.stringify(await redis.lrange(key, '0', '-1')));
    }
    return parts.join('\n');
  } finally {
    await redis.quit();
  }
}

describe('API keys and roles (GRAFT_AUTH=required)', () => {
  let env: TestEnv;
  let t: TestApp;
  let acmeMember: CreatedKey;
  let acmeReader: CreatedKey;
  let betaMember: CreatedKey;

  beforeAll(async () => {
    env = await makeTestEnv({ GRAFT_AUTH: 'required', GRAFT_ADMIN_KEY: ADMIN_KEY });
    t = await buildTestApp(env);
    acmeMember = await createKey(t.app, { tenant: 'acme', role: 'member', name: 'ci' });
    acmeReader = await createKey(t.app, { tenant: 'acme', role: 'reader', name: 'dashboards' });
    betaMember = await createKey(t.app, { tenant: 'beta', role: 'member', name: 'beta ci' });
  });

  afterAll(async () => {
    await t?.close();
    await env?.cleanup();
  });

  it.each([
    ['no header', {}, 'missing_api_key'],
    ['an empty header', { authorization: '' }, 'missing_api_key'],
    ['Basic credentials', { authorization: 'Basic dXNlcjpwYXNz' }, 'malformed_authorization'],
    ['Bearer without a key', { authorization: 'Bearer' }, 'malformed_authorization'],
    ['two tokens', { authorization: 'Bearer gk_a gk_b' }, 'malformed_authorization'],
    ['an unknown graft key', bearer('gk_' + 'A'.repeat(43)), 'invalid_api_key'],
    ['garbage', bearer('not-a-key'), 'invalid_api_key'],
  ])('%s → 401 %s with WWW-Authenticate: Bearer', async (_what, headers, code) => {
    const res = await t.app.inject({ method: 'GET', url: '/v1/jobs', headers });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer\b/);
    expect(res.json().error).toMatchObject({ code });
    // The answer never echoes what was sent.
    const sent = (headers as { authorization?: string }).authorization;
    if (sent) expect(res.body).not.toContain(sent.replace(/^\S+ ?/, '') || '\u0000');
  });

  it('authenticates before reading a body: a write without a key is 401, not 400', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/jobs', payload: { not: 'a spec' } });
    expect(res.statusCode).toBe(401);
  });

  it('leaves health, readiness, docs and the OpenAPI document open', async () => {
    for (const url of ['/healthz', '/readyz', '/openapi.json', '/docs', '/metrics']) {
      const res = await t.app.inject({ method: 'GET', url });
      expect([url, res.statusCode < 400]).toEqual([url, true]);
    }
  });

  it('accepts the bootstrap admin key and created keys', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(ADMIN_KEY) })).statusCode).toBe(200);
    for (const k of [acmeMember, acmeReader, betaMember]) {
      expect((await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(k.key) })).statusCode).toBe(200);
    }
  });

  it('creates keys shaped gk_<43 base64url chars> with ids key_<hex>, shown once', async () => {
    expect(acmeMember).toEqual({ id: expect.stringMatching(/^key_[0-9a-f]{16}$/), key: expect.stringMatching(/^gk_[A-Za-z0-9_-]{43}$/), tenant: 'acme', role: 'member', name: 'ci', createdAt: expect.any(String) });
    expect(new Set([acmeMember.key, acmeReader.key, betaMember.key]).size).toBe(3);
  });

  it('stores only the sha256 of a key, never the secret', async () => {
    const stored = await dumpNamespace(env.queueName);
    for (const k of [acmeMember, acmeReader, betaMember]) {
      expect(stored).not.toContain(k.key);
      expect(stored).not.toContain(k.key.slice(3));
      expect(stored).toContain(createHash('sha256').update(k.key).digest('hex'));
    }
  });

  it('lists every key to an admin, its own tenant\'s to others, never a secret or hash', async () => {
    const all = await t.app.inject({ method: 'GET', url: '/v1/keys', headers: bearer(ADMIN_KEY) });
    expect(all.statusCode).toBe(200);
    const ids = all.json().data.map((k: { id: string }) => k.id);
    expect(ids).toEqual(expect.arrayContaining([acmeMember.id, acmeReader.id, betaMember.id]));
    for (const k of all.json().data) expect(Object.keys(k).sort()).toEqual(['createdAt', 'id', 'name', 'revokedAt', 'role', 'tenant']);
    expect(all.body).not.toContain(acmeMember.key);

    const onlyBeta = await t.app.inject({ method: 'GET', url: '/v1/keys?tenant=beta', headers: bearer(ADMIN_KEY) });
    expect(onlyBeta.json().data.map((k: { id: string }) => k.id)).toEqual([betaMember.id]);

    const asReader = await t.app.inject({ method: 'GET', url: '/v1/keys', headers: bearer(acmeReader.key) });
    expect(asReader.json().data.map((k: { tenant: string }) => k.tenant)).toEqual(['acme', 'acme']);
    const peek = await t.app.inject({ method: 'GET', url: '/v1/keys?tenant=beta', headers: bearer(acmeMember.key) });
    expect(peek.json().data).toEqual([]);
  });

  it('lets only admins create keys', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/keys', headers: bearer(acmeMember.key), payload: { tenant: 'acme', role: 'admin', name: 'escalate' } });
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toMatchObject({ code: 'forbidden', message: expect.stringContaining('(member)') });
    const bad = await t.app.inject({ method: 'POST', url: '/v1/keys', headers: bearer(ADMIN_KEY), payload: { tenant: 'Not A Tenant', role: 'member', name: 'x' } });
    expect(bad.statusCode).toBe(400);
    const badRole = await t.app.inject({ method: 'POST', url: '/v1/keys', headers: bearer(ADMIN_KEY), payload: { tenant: 'acme', role: 'owner', name: 'x' } });
    expect(badRole.statusCode).toBe(400);
  });

  it.each([
    ['POST', '/v1/jobs'],
    ['DELETE', '/v1/datasets/digits'],
    ['DELETE', '/v1/checkpoints/tiny'],
    ['POST', '/v1/jobs/00000000-0000-0000-0000-000000000000/cancel'],
    ['POST', '/v1/datasets'],
    ['DELETE', '/v1/keys/key_0000000000000000'],
  ])('a reader may not %s %s: 403 forbidden naming its role', async (method, url) => {
    const res = await t.app.inject({ method: method as 'POST', url, headers: bearer(acmeReader.key), payload: method === 'POST' ? {} : undefined });
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toMatchObject({ code: 'forbidden', message: expect.stringContaining('(reader)') });
  });

  it('a reader may read and dry-run a plan (POST /v1/plans is a read)', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/v1/datasets', headers: bearer(acmeReader.key) })).statusCode).toBe(200);
    const plan = await t.app.inject({ method: 'POST', url: '/v1/plans', headers: bearer(acmeReader.key), payload: {} });
    expect(plan.statusCode).toBe(400); // reached validation: not refused for its role
  });

  it('admin-only routes refuse members and readers', async () => {
    for (const key of [acmeMember.key, acmeReader.key]) {
      const res = await t.app.inject({ method: 'GET', url: '/v1/audit', headers: bearer(key) });
      expect(res.statusCode).toBe(403);
    }
  });

  it('Graft-Tenant: an admin acts in another tenant; anyone else gets 403; a bad id 400', async () => {
    const created = await t.app.inject({ method: 'POST', url: '/v1/keys', headers: { ...bearer(ADMIN_KEY), 'graft-tenant': 'acme' }, payload: { tenant: 'acme', role: 'reader', name: 'as acme' } });
    expect(created.statusCode).toBe(201);
    const audit = await t.app.inject({ method: 'GET', url: '/v1/audit?action=key.create', headers: bearer(ADMIN_KEY) });
    const entry = audit.json().data.find((e: { target: { id: string } }) => e.target.id === created.json().id);
    expect(entry.actor).toEqual({ keyId: 'bootstrap-admin', keyName: 'GRAFT_ADMIN_KEY', tenant: 'acme', role: 'admin' });

    const member = await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: { ...bearer(acmeMember.key), 'graft-tenant': 'beta' } });
    expect(member.statusCode).toBe(403);
    const own = await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: { ...bearer(acmeMember.key), 'graft-tenant': 'acme' } });
    expect(own.statusCode).toBe(403);
    const bad = await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: { ...bearer(ADMIN_KEY), 'graft-tenant': '../etc' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ code: 'invalid_tenant', param: 'Graft-Tenant' });
  });

  it('revocation: members revoke their tenant\'s keys; another tenant\'s key is a 404 like a missing one', async () => {
    const victim = await createKey(t.app, { tenant: 'acme', role: 'reader', name: 'to revoke' });
    const missingId = 'key_0123456789abcdef';
    const missing = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${missingId}`, headers: bearer(acmeMember.key) });
    const foreign = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${betaMember.id}`, headers: bearer(acmeMember.key) });
    expect([missing.statusCode, foreign.statusCode]).toEqual([404, 404]);
    expect(foreign.json().error.message.replace(betaMember.id, 'ID')).toBe(missing.json().error.message.replace(missingId, 'ID'));
    expect(foreign.json().error.code).toBe(missing.json().error.code);
    // beta's key still works.
    expect((await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(betaMember.key) })).statusCode).toBe(200);

    expect((await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(victim.key) })).statusCode).toBe(200);
    const del = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${victim.id}`, headers: bearer(acmeMember.key) });
    expect(del.statusCode).toBe(204);
    const after = await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(victim.key) });
    const unknown = await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer('gk_' + 'B'.repeat(43)) });
    expect(after.statusCode).toBe(401);
    // Revoked and unknown keys are indistinguishable.
    expect(after.json()).toEqual(unknown.json());
    const listed = await t.app.inject({ method: 'GET', url: '/v1/keys', headers: bearer(ADMIN_KEY) });
    expect(listed.json().data.find((k: { id: string }) => k.id === victim.id).revokedAt).toEqual(expect.any(String));
    // Revoking again is a no-op.
    expect((await t.app.inject({ method: 'DELETE', url: `/v1/keys/${victim.id}`, headers: bearer(ADMIN_KEY) })).statusCode).toBe(204);
  });

  it('a member may not revoke an admin key of its tenant', async () => {
    const admin = await createKey(t.app, { tenant: 'acme', role: 'admin', name: 'acme admin' });
    const res = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${admin.id}`, headers: bearer(acmeMember.key) });
    expect(res.statusCode).toBe(403);
    expect((await t.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(admin.key) })).statusCode).toBe(200);
  });

  it('records key.create and key.revoke in the audit log, filtered and paged', async () => {
    const all = await t.app.inject({ method: 'GET', url: '/v1/audit?limit=1000', headers: bearer(ADMIN_KEY) });
    expect(all.statusCode).toBe(200);
    const entries = all.json().data as { id: string; at: string; action: string; actor: { keyId: string }; target: { tenant: string; id: string }; details: Record<string, unknown> }[];
    expect(entries.filter((e) => e.action === 'key.create').length).toBeGreaterThanOrEqual(5);
    const revoke = entries.find((e) => e.action === 'key.revoke');
    expect(revoke).toMatchObject({ actor: { keyId: acmeMember.id }, target: { kind: 'key', tenant: 'acme' }, details: { role: 'reader', name: 'to revoke' } });
    expect(new Date(revoke!.at).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(all.body).not.toContain(acmeMember.key);

    const onlyRevokes = await t.app.inject({ method: 'GET', url: '/v1/audit?action=key.revoke', headers: bearer(ADMIN_KEY) });
    expect(onlyRevokes.json().data.map((e: { action: string }) => e.action)).toEqual(['key.revoke']);
    const beta = await t.app.inject({ method: 'GET', url: '/v1/audit?tenant=beta', headers: bearer(ADMIN_KEY) });
    expect(beta.json().data.map((e: { target: { id: string } }) => e.target.id)).toEqual([betaMember.id]);

    const first = await t.app.inject({ method: 'GET', url: '/v1/audit?limit=2', headers: bearer(ADMIN_KEY) });
    expect(first.json().data.map((e: { id: string }) => e.id)).toEqual(entries.slice(0, 2).map((e) => e.id));
    const second = await t.app.inject({ method: 'GET', url: `/v1/audit?limit=2&after=${first.json().nextCursor}`, headers: bearer(ADMIN_KEY) });
    expect(second.json().data.map((e: { id: string }) => e.id)).toEqual(entries.slice(2, 4).map((e) => e.id));
  });
});

describe('two API processes sharing one Redis', () => {
  let env: TestEnv;
  const services: Services[] = [];
  const apps: FastifyInstance[] = [];

  async function instance(e: TestEnv): Promise<FastifyInstance> {
    const s = await createServices(e.config, pino({ level: 'silent' }));
    const app = await buildApp({ config: e.config, deps: s.deps, logger: false });
    await app.ready();
    services.push(s);
    apps.push(app);
    return app;
  }

  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    for (const s of services.splice(0)) await s.close();
    await env?.cleanup();
  });

  it('a key revoked on one stops on the other within 1 s, even with a long lookup cache', async () => {
    // A one-minute cache: only the revocation broadcast can stop the key in time.
    env = await makeTestEnv({ GRAFT_AUTH: 'required', GRAFT_ADMIN_KEY: ADMIN_KEY, AUTH_CACHE_MS: '60000' });
    const [a, b] = [await instance(env), await instance(env)];
    const k = await createKey(a, { tenant: 'acme', role: 'member', name: 'short-lived' });
    expect((await b.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(k.key) })).statusCode).toBe(200); // cached on b now
    const revokedAt = Date.now();
    expect((await a.inject({ method: 'DELETE', url: `/v1/keys/${k.id}`, headers: bearer(ADMIN_KEY) })).statusCode).toBe(204);
    let status = 200;
    while (status === 200 && Date.now() - revokedAt < 5000) {
      status = (await b.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(k.key) })).statusCode;
      if (status === 200) await new Promise((r) => setTimeout(r, 5));
    }
    const elapsed = Date.now() - revokedAt;
    expect(status).toBe(401);
    expect(elapsed).toBeLessThanOrEqual(1000);
  });

  it('share one rate-limit budget per key, answered 429 rate_limited with the standard headers', async () => {
    env = await makeTestEnv({ GRAFT_AUTH: 'required', GRAFT_ADMIN_KEY: ADMIN_KEY, RATE_LIMIT_PER_MINUTE: '6' });
    const [a, b] = [await instance(env), await instance(env)];
    // Two key creations count against the admin key, not the member's.
    const k = await createKey(a, { tenant: 'acme', role: 'member', name: 'limited' });
    const other = await createKey(b, { tenant: 'acme', role: 'member', name: 'other' });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await (i % 2 ? b : a).inject({ method: 'GET', url: '/v1/jobs', headers: bearer(k.key) });
      statuses.push(res.statusCode);
      expect(res.headers['x-ratelimit-limit']).toBe('6');
      expect(res.headers['x-ratelimit-remaining']).toBe(String(5 - i));
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    const over = await b.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(k.key) });
    expect(over.statusCode).toBe(429);
    expect(over.json().error).toMatchObject({ code: 'rate_limited', message: expect.stringContaining('RATE_LIMIT_PER_MINUTE') });
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(over.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(over.headers['x-ratelimit-remaining']).toBe('0');
    expect((await a.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(k.key) })).statusCode).toBe(429);
    // Per key: another key of the same tenant is not affected, and health stays open.
    expect((await a.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(other.key) })).statusCode).toBe(200);
    expect((await a.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });

  it('count refused keys against their IP, so guessing keys is rate-limited too (429 after the budget, not 401 forever)', async () => {
    env = await makeTestEnv({ GRAFT_AUTH: 'required', GRAFT_ADMIN_KEY: ADMIN_KEY, RATE_LIMIT_PER_MINUTE: '4' });
    const [a, b] = [await instance(env), await instance(env)];
    const k = await createKey(a, { tenant: 'acme', role: 'member', name: 'honest' });
    const guesses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await (i % 2 ? b : a).inject({ method: 'GET', url: '/v1/jobs', headers: i === 3 ? {} : bearer(`graft_guess_${i}`) });
      guesses.push(res.statusCode);
      expect(res.headers['x-ratelimit-remaining']).toBe(String(3 - i));
    }
    // Wrong keys and a missing one alike: 401 within the budget, shared by every API process.
    expect(guesses).toEqual([401, 401, 401, 401]);
    const over = await b.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(k.key.slice(0, -1) + (k.key.endsWith('x') ? 'y' : 'x')) });
    expect(over.statusCode).toBe(429);
    expect(over.json().error).toMatchObject({ code: 'rate_limited' });
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
    // The IP's refused attempts do not spend a real key's budget.
    expect((await a.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(k.key) })).statusCode).toBe(200);
  });
});

describe('bootstrap admin key', () => {
  let env: TestEnv | undefined;
  afterEach(async () => {
    await env?.cleanup();
    env = undefined;
  });

  it('is generated once into DATA_DIR/.secrets/admin.key (0600) when none is configured, and reused', async () => {
    env = await makeTestEnv({ GRAFT_AUTH: 'required' });
    const first = await buildTestApp(env);
    const file = adminKeyPath(env.dataDir);
    const key = (await fs.readFile(file, 'utf8')).trim();
    expect(key).toMatch(/^gk_[A-Za-z0-9_-]{43}$/);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect((await first.app.inject({ method: 'GET', url: '/v1/keys', headers: bearer(key) })).statusCode).toBe(200);
    await first.close();
    const second = await buildTestApp(env);
    expect((await fs.readFile(file, 'utf8')).trim()).toBe(key);
    expect((await second.app.inject({ method: 'POST', url: '/v1/keys', headers: bearer(key), payload: { tenant: 'x', role: 'reader', name: 'r' } })).statusCode).toBe(201);
    await second.close();
  });

  it('is read from GRAFT_ADMIN_KEY_FILE', async () => {
    const probe = await makeTestEnv();
    const file = `${probe.dataDir}/admin.key`;
    await fs.writeFile(file, `${ADMIN_KEY}\n`);
    env = await makeTestEnv({ GRAFT_AUTH: 'required', GRAFT_ADMIN_KEY_FILE: file });
    const t = await buildTestApp(env);
    try {
      expect((await t.app.inject({ method: 'GET', url: '/v1/keys', headers: bearer(ADMIN_KEY) })).statusCode).toBe(200);
      expect((await t.app.inject({ method: 'GET', url: '/v1/keys', headers: bearer(ADMIN_KEY + 'x') })).statusCode).toBe(401);
      await expect(fs.access(adminKeyPath(env.dataDir))).rejects.toThrow();
    } finally {
      await t.close();
      await probe.cleanup();
    }
  });
});

describe('secrets never logged', () => {
  it('a request carrying a key, logged at trace level, leaves no trace of the key', async () => {
    const env = await makeTestEnv({ GRAFT_AUTH: 'required', GRAFT_ADMIN_KEY: ADMIN_KEY, LOG_LEVEL: 'trace' });
    let out = '';
    const sink = new Writable({
      write(chunk, _enc, done) {
        out += String(chunk);
        done();
      },
    });
    const logger = createApiLogger('trace', sink);
    const services = await createServices(env.config, logger.child({ component: 'services' }));
    const app = await buildApp({ config: env.config, deps: services.deps, logger });
    app.get('/echo-headers', async (request) => {
      // A handler that (wrongly) logs the whole request and its headers.
      request.log.info({ req: request, headers: request.headers }, 'debugging headers');
      return {};
    });
    await app.ready();
    try {
      const created = await app.inject({ method: 'POST', url: '/v1/keys', headers: bearer(ADMIN_KEY), payload: { tenant: 'acme', role: 'member', name: 'logged?' } });
      const key = created.json().key as string;
      await app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(key) });
      await app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(key + 'typo') });
      await app.inject({ method: 'GET', url: '/echo-headers', headers: bearer(key) });
      logger.info({ key, authorization: `Bearer ${key}` }, 'an object carrying a key');
      logger.info({ config: env.config, env: { GRAFT_ADMIN_KEY: ADMIN_KEY }, body: { apiKey: key } }, 'objects holding the admin key and a key');
      expect(out).toContain('debugging headers');
      expect(out).toContain('request completed');
      expect(out).toContain('[redacted]');
      expect(out).not.toContain(key);
      expect(out).not.toContain(key.slice(3));
      expect(out).not.toContain(ADMIN_KEY);
    } finally {
      await app.close();
      await services.close();
      await env.cleanup();
    }
  });
});
