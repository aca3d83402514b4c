import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { buildApp } from '../src/api/app';
import { createServices, type Services } from '../src/api/services';
import { loadConfig, type Config } from '../src/config';

/**
 * `npm run bench:auth` (issue 11):
 *   1. authenticate(): the cost of checking a key per request, with cached lookups (the state of
 *      a key in use), over AUTHS calls; and the same through a whole /v1 request (inject) with
 *      GRAFT_AUTH=off, with keys, and with keys plus the Redis rate limit.
 *   2. revoke → first 401 on a second API instance sharing the Redis (default AUTH_CACHE_MS),
 *      polled as fast as requests go, TRIALS times.
 * Targets: key checking <= 1 ms at p99; revocation effective everywhere <= 1 s.
 * Writes bench/results/auth.json.
 */
const AUTHS = Number(process.env.BENCH_AUTHS ?? 50_000);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000);
const TRIALS = 5;
const TARGET_P99_MS = 1;
const TARGET_REVOKE_MS = 1000;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROOT = path.resolve(__dirname, '..', '..');
const ADMIN_KEY = `bench-admin-${process.pid}-0123456789abcdef0123456789`;

interface Stats {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

function stats(samplesMs: number[]): Stats {
  const s = [...samplesMs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] };
}

const delta = (x: Stats, base: Stats) => `vs off: p50 ${(x.p50 - base.p50 >= 0 ? '+' : '') + (x.p50 - base.p50).toFixed(3)} ms, p99 ${(x.p99 - base.p99 >= 0 ? '+' : '') + (x.p99 - base.p99).toFixed(3)} ms`;
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

class Instances {
  private readonly services: Services[] = [];
  private readonly apps: FastifyInstance[] = [];

  async start(config: Readonly<Config>): Promise<FastifyInstance> {
    const s = await createServices(config, pino({ level: 'silent' }));
    const app = await buildApp({ config, deps: s.deps, logger: false });
    await app.ready();
    this.services.push(s);
    this.apps.push(app);
    return app;
  }

  async close(): Promise<void> {
    for (const app of this.apps.splice(0)) await app.close();
    for (const s of this.services.splice(0)) await s.close();
  }
}

async function createKey(app: FastifyInstance, name: string): Promise<{ id: string; key: string }> {
  const res = await app.inject({ method: 'POST', url: '/v1/keys', headers: { authorization: `Bearer ${ADMIN_KEY}` }, payload: { tenant: 'bench', role: 'member', name } });
  if (res.statusCode !== 201) throw new Error(`POST /v1/keys → ${res.statusCode} ${res.body}`);
  return res.json();
}

/** Whole /v1 requests through each app in turn (interleaved, so load from elsewhere hits all alike). */
async function requestLatencies(apps: { app: FastifyInstance; headers: Record<string, string> }[]): Promise<Stats[]> {
  const samples: number[][] = apps.map(() => []);
  for (let i = -200; i < REQUESTS; i++) {
    for (const [n, { app, headers }] of apps.entries()) {
      const t0 = process.hrtime.bigint();
      const res = await app.inject({ method: 'GET', url: '/v1/jobs?limit=1', headers });
      if (i >= 0) samples[n].push(ms(t0)); // the first 200 rounds warm up
      if (res.statusCode !== 200) throw new Error(`GET /v1/jobs → ${res.statusCode} ${res.body}`);
    }
  }
  return samples.map(stats);
}

async function main(): Promise<void> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'graft-bench-auth-'));
  const queue = `bench-auth-${process.pid}`;
  const base = { REDIS_URL, DATA_DIR: dataDir, QUEUE_NAME: queue, LOG_LEVEL: 'silent', GRAFT_ADMIN_KEY: ADMIN_KEY };
  const keyed = loadConfig({ ...base, GRAFT_AUTH: 'required', RATE_LIMIT_PER_MINUTE: '0' });
  const instances = new Instances();
  const results: Record<string, unknown> = {};
  try {
    // 1a. authenticate() alone, the key's lookup cached (as for any key in use).
    const a = await instances.start(keyed);
    const services = await createServices(keyed, pino({ level: 'silent' }));
    const member = await createKey(a, 'bench');
    const headers = { authorization: `Bearer ${member.key}` };
    const samples: number[] = [];
    for (let i = 0; i < 1000; i++) await services.deps.auth.authenticate(headers);
    for (let i = 0; i < AUTHS; i++) {
      const t0 = process.hrtime.bigint();
      await services.deps.auth.authenticate(headers);
      samples.push(ms(t0));
    }
    await services.close();
    const auth = stats(samples);

    // 1b. whole requests: no keys, keys, keys + Redis rate limit (a budget no run reaches).
    const open = await instances.start(loadConfig({ ...base, GRAFT_AUTH: 'off', RATE_LIMIT_PER_MINUTE: '0' }));
    const limited = await instances.start(loadConfig({ ...base, GRAFT_AUTH: 'required', RATE_LIMIT_PER_MINUTE: String(REQUESTS * 100) }));
    const [reqOff, reqKey, reqKeyLimit] = await requestLatencies([
      { app: open, headers: {} },
      { app: a, headers },
      { app: limited, headers },
    ]);

    // 2. revoke on one instance, poll another (default AUTH_CACHE_MS) until 401.
    const cfg = loadConfig({ ...base, GRAFT_AUTH: 'required', RATE_LIMIT_PER_MINUTE: '0' });
    const b = await instances.start(cfg);
    const revokeMs: number[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const k = await createKey(a, `revoke-${trial}`);
      const h = { authorization: `Bearer ${k.key}` };
      if ((await b.inject({ method: 'GET', url: '/v1/keys', headers: h })).statusCode !== 200) throw new Error('new key refused');
      const t0 = process.hrtime.bigint();
      const del = await a.inject({ method: 'DELETE', url: `/v1/keys/${k.id}`, headers: { authorization: `Bearer ${ADMIN_KEY}` } });
      if (del.statusCode !== 204) throw new Error(`DELETE → ${del.statusCode}`);
      for (;;) {
        const res = await b.inject({ method: 'GET', url: '/v1/keys', headers: h });
        if (res.statusCode === 401) break;
        if (ms(t0) > 10_000) throw new Error('revoked key still accepted after 10 s');
      }
      revokeMs.push(ms(t0));
    }
    const revoke = stats(revokeMs);

    const rows: [string, Stats, string][] = [
      [`authenticate(), cached (${AUTHS} calls)`, auth, `p99 <= ${TARGET_P99_MS} ms: ${auth.p99 <= TARGET_P99_MS ? 'met' : 'MISSED'}`],
      [`GET /v1/jobs, GRAFT_AUTH=off (${REQUESTS})`, reqOff, ''],
      [`GET /v1/jobs, API key (${REQUESTS})`, reqKey, delta(reqKey, reqOff)],
      [`GET /v1/jobs, key + rate limit (${REQUESTS})`, reqKeyLimit, delta(reqKeyLimit, reqOff)],
      [`revoke → first 401 elsewhere (${TRIALS} trials)`, revoke, `max <= ${TARGET_REVOKE_MS} ms: ${revoke.max <= TARGET_REVOKE_MS ? 'met' : 'MISSED'}`],
    ];
    const f = (n: number) => n.toFixed(3).padStart(9);
    console.log(`${'measure'.padEnd(46)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'max ms'.padStart(9)}  target`);
    for (const [name, s, note] of rows) console.log(`${name.padEnd(46)}${f(s.p50)}${f(s.p99)}${f(s.max)}  ${note}`);
    Object.assign(results, {
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
      authCacheMs: cfg.AUTH_CACHE_MS,
      authenticate: auth,
      requests: { off: reqOff, key: reqKey, keyAndRateLimit: reqKeyLimit },
      revokeToFirst401Ms: { ...revoke, samples: revokeMs },
      targets: { authenticateP99Ms: TARGET_P99_MS, revokeMs: TARGET_REVOKE_MS },
      met: { authenticate: auth.p99 <= TARGET_P99_MS, revoke: revoke.max <= TARGET_REVOKE_MS },
    });
    const out = path.join(ROOT, 'bench', 'results', 'auth.json');
    await fs.writeFile(out, JSON.stringify(results, null, 2) + '\n');
    console.log(`wrote ${path.relative(ROOT, out)}`);
  } finally {
    await instances.close();
    await fs.rm(dataDir, { recursive: true, force: true });
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`graft:${queue}:*`);
    const bull = await redis.keys(`bull:${queue}:*`);
    if (keys.length + bull.length) await redis.del(...keys, ...bull);
    await redis.quit();
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
