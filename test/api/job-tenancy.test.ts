import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import request from 'supertest';
import { buildApp } from '../../src/api/app';
import { createServices, type Services } from '../../src/api/services';
import { DEFAULT_TENANT, ROLES, type Principal, type Role } from '../../src/auth/principal';
import { makeTestEnv, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';
import { classifierSpec } from '../helpers/jobs';

/**
 * Jobs belong to tenants, through the real app: another tenant's job is a 404 byte-identical to a
 * missing id on every job route; listing is per tenant (admins see all); Idempotency-Keys and
 * output reservations are per tenant; the job quota holds across two API processes sharing one
 * Redis; creations and cancels are audited. Keys are issue 11's other half: here a test
 * authenticator reads `Bearer <tenant>:<role>` so the job routes can be tested on their own.
 */
const QUOTA = 3;

class TestAuthenticator {
  async authenticate(headers: IncomingHttpHeaders): Promise<Principal> {
    const [tenant, role] = (headers.authorization ?? '').replace(/^Bearer /, '').split(':');
    if (!tenant || !ROLES.includes(role as Role)) return { keyId: null, keyName: null, tenant: DEFAULT_TENANT, role: 'admin' };
    return { keyId: `key-${tenant}-${role}`, keyName: role, tenant, role: role as Role };
  }
}

interface Instance {
  app: FastifyInstance;
  services: Services;
}

async function startInstance(env: TestEnv): Promise<Instance> {
  const services = await createServices(env.config, pino({ level: 'silent' }));
  services.deps.auth = new TestAuthenticator();
  const app = await buildApp({ config: env.config, deps: services.deps, logger: false });
  await app.ready();
  return { app, services };
}

const as = (tenant: string, role: Role = 'member') => ({ authorization: `Bearer ${tenant}:${role}` });

/** What may differ between two answers that must otherwise be identical. */
function comparable(res: request.Response, id: string) {
  const headers = { ...res.headers };
  delete headers.date;
  // The caller's own rate-limit budget counts down with every request; it says nothing about the job.
  delete headers['x-ratelimit-remaining'];
  return { status: res.status, headers, text: res.text.split(id).join('<id>') };
}

describe('jobs of tenants (API)', () => {
  let env: TestEnv;
  let one: Instance;
  let two: Instance;

  beforeAll(async () => {
    env = await makeTestEnv({ TENANT_MAX_ACTIVE_JOBS: String(QUOTA) });
    for (const tenant of ['acme', 'beta', 'gamma', 'delta', 'other']) await writeMnistDataset(env.dataDir, 'digits', { train: 60, test: 20 }, tenant);
    one = await startInstance(env);
    two = await startInstance(env);
  });

  afterAll(async () => {
    for (const i of [one, two]) {
      await i.app.close();
      await i.services.close();
    }
    await env.cleanup();
  });

  const submit = (i: Instance, tenant: string, output: string, headers: Record<string, string> = {}) =>
    request(i.app.server).post('/v1/jobs').set({ ...as(tenant), ...headers }).send(classifierSpec(output, 1));

  it("another tenant's job is the same 404 as a missing one, on every job route, after the same work", async () => {
    const created = await submit(one, 'acme', 'private');
    expect(created.status).toBe(202);
    expect(created.body.tenant).toBe('acme');
    const id = created.body.id as string;
    const missing = randomUUID();
    const routes: [string, (i: string) => request.Test][] = [
      ['GET /jobs/:id', (i) => request(one.app.server).get(`/v1/jobs/${i}`)],
      ['POST /jobs/:id/cancel', (i) => request(one.app.server).post(`/v1/jobs/${i}/cancel`)],
      ['GET /jobs/:id/events', (i) => request(one.app.server).get(`/v1/jobs/${i}/events`)],
      ['GET /jobs/:id/events (SSE)', (i) => request(one.app.server).get(`/v1/jobs/${i}/events`).set('accept', 'text/event-stream')],
      ['GET /jobs/:id/checkpoints', (i) => request(one.app.server).get(`/v1/jobs/${i}/checkpoints`)],
    ];
    for (const [route, call] of routes) {
      for (const role of ['member', 'reader', 'admin'] as const) {
        if (role === 'admin') continue; // admins see every tenant's jobs (below)
        const theirs = await call(id).set(as('beta', role));
        const nothing = await call(missing).set(as('beta', role));
        expect({ route, ...comparable(theirs, id) }).toEqual({ route, ...comparable(nothing, missing) });
        // A reader may not cancel anything: 403 before any lookup, the same for every id.
        const writesAsReader = role === 'reader' && route.startsWith('POST');
        expect(theirs.status).toBe(writesAsReader ? 403 : 404);
        expect(theirs.body.error.code).toBe(writesAsReader ? 'forbidden' : 'job_not_found');
      }
    }
    // The job was not touched by beta's cancel, and its owner and an admin see it.
    expect((await request(one.app.server).get(`/v1/jobs/${id}`).set(as('acme'))).body).toMatchObject({ id, status: 'queued', tenant: 'acme' });
    expect((await request(two.app.server).get(`/v1/jobs/${id}`).set(as('other', 'admin'))).status).toBe(200);
    expect((await request(one.app.server).get(`/v1/jobs/${id}/events`).set(as('acme'))).status).toBe(200);
    const cancelled = await request(one.app.server).post(`/v1/jobs/${id}/cancel`).set(as('acme'));
    expect(cancelled.body.status).toBe('cancelled');
    // The real audit log (job.create is written by create.lua with the job itself).
    const { entries } = await one.services.deps.audit.list({ limit: 1000 });
    expect(entries.filter((e) => e.target.id === id).map((e) => [e.action, e.actor.tenant, e.target.tenant, e.target.id])).toEqual([
      ['job.create', 'acme', 'acme', id],
      ['job.cancel', 'acme', 'acme', id],
    ]);
  });

  it('listing: members see their tenant, admins every tenant or one with ?tenant=', async () => {
    const b = await submit(two, 'beta', 'listed');
    expect(b.status).toBe(202);
    const ids = async (headers: Record<string, string>, query = '') => ((await request(one.app.server).get(`/v1/jobs${query}`).set(headers)).body.data as { id: string; tenant: string }[]).map((j) => j.tenant);
    expect(new Set(await ids(as('beta')))).toEqual(new Set(['beta']));
    expect(new Set(await ids(as('acme')))).toEqual(new Set(['acme']));
    expect(await ids(as('acme', 'reader'), '?tenant=beta')).toEqual([]);
    expect(new Set(await ids(as('acme', 'admin')))).toEqual(new Set(['acme', 'beta']));
    expect(new Set(await ids(as('acme', 'admin'), '?tenant=beta'))).toEqual(new Set(['beta']));
    expect((await request(one.app.server).get('/v1/jobs?tenant=Not_A_Tenant').set(as('acme', 'admin'))).status).toBe(400);
    await request(one.app.server).post(`/v1/jobs/${b.body.id}/cancel`).set(as('beta'));
  });

  it('output names and Idempotency-Keys are per tenant', async () => {
    const a = await submit(one, 'acme', 'mnist-ft', { 'idempotency-key': 'same-key' });
    const b = await submit(two, 'beta', 'mnist-ft', { 'idempotency-key': 'same-key' });
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.body.id).not.toBe(b.body.id);
    const again = await submit(two, 'acme', 'mnist-ft', { 'idempotency-key': 'same-key' });
    expect([again.status, again.body.id]).toEqual([200, a.body.id]);
    expect((await submit(one, 'acme', 'mnist-ft')).body.error.code).toBe('checkpoint_reserved');
    for (const [tenant, id] of [['acme', a.body.id], ['beta', b.body.id]]) await request(one.app.server).post(`/v1/jobs/${id}/cancel`).set(as(tenant));
  });

  it(`the job quota (${QUOTA} queued + running) holds across two API processes submitting at once`, async () => {
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => submit(i % 2 ? one : two, 'gamma', `q${i}`)));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([...Array(QUOTA).fill(202), ...Array(8 - QUOTA).fill(429)]);
    const refused = results.find((r) => r.status === 429)!;
    expect(refused.headers['retry-after']).toBe(String(env.config.PRESSURE_RETRY_AFTER_SECONDS));
    expect(refused.body.error).toMatchObject({ code: 'quota_exceeded', details: { quota: 'maxActiveJobs', limit: QUOTA, used: QUOTA } });
    expect(refused.body.error.message).toContain(`${QUOTA}`);
    // Another tenant's budget is its own; a cancel frees a place.
    expect((await submit(one, 'delta', 'd1')).status).toBe(202);
    const accepted = results.find((r) => r.status === 202)!;
    await request(two.app.server).post(`/v1/jobs/${accepted.body.id}/cancel`).set(as('gamma'));
    expect((await submit(one, 'gamma', 'q-after')).status).toBe(202);
  });
});
