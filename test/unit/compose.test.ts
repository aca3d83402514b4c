/**
 * The deployment files cannot be run here (no Docker engine), so this suite checks them against
 * the code they deploy: the compose services, their environment (names and values validated by
 * src/config.ts), the shared volume, the commands (files the build really produces) and the
 * Dockerfile's guarantees (Node 22, non-root, healthcheck, tfjs-node must load).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { ConfigSchema, loadConfig } from '../../src/config';

const ROOT = path.join(__dirname, '..', '..');
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');

type Service = Record<string, unknown>;
// merge: true resolves the `<<: *anchor` keys the way docker compose does.
const compose = parse(read('docker-compose.yml'), { merge: true }) as { services?: Record<string, Service>; volumes?: Record<string, unknown> };
const services = compose.services ?? {};
const CONFIG_NAMES = Object.keys(ConfigSchema.properties);

/** Compose interpolation as a fresh checkout sees it (nothing exported): every `${VAR}` needs a default. */
function interpolate(value: string, where: string): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (match, braced, def, bare) => {
    if (match === '$$') return '$';
    if (def === undefined) throw new Error(`${where}: ${match} has no default (\${${braced ?? bare}:-value}); it would be empty`);
    return def;
  });
}

function envOf(name: string): Record<string, string> {
  const raw = services[name]?.environment ?? {};
  const entries: [string, unknown][] = Array.isArray(raw)
    ? raw.map((line: string) => {
        const i = String(line).indexOf('=');
        return i < 0 ? [String(line), undefined] : [line.slice(0, i), line.slice(i + 1)];
      })
    : Object.entries(raw as Record<string, unknown>);
  const env: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (value === undefined || value === null) throw new Error(`${name}.environment.${key} has no value (it would be copied from the host)`);
    env[key] = interpolate(String(value), `${name}.environment.${key}`);
  }
  return env;
}

function argv(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  if (typeof value === 'string') return value.trim().split(/\s+/);
  return [];
}

function volumesOf(name: string): { source: string; target: string }[] {
  const raw = (services[name]?.volumes ?? []) as unknown[];
  return raw.map((v) => {
    if (typeof v === 'string') {
      const [source, target] = v.split(':');
      return { source, target: target ?? source };
    }
    const o = v as { source?: string; target?: string };
    return { source: o.source ?? '', target: o.target ?? '' };
  });
}

function dependsOnHealthyRedis(name: string): boolean {
  const dep = services[name]?.depends_on as Record<string, { condition?: string }> | string[] | undefined;
  return !!dep && !Array.isArray(dep) && dep.redis?.condition === 'service_healthy';
}

/** `node dist/src/server.js` → `src/server.ts`: the source the build compiles into that file. */
function sourceOf(command: string[]): string {
  expect(command[0]).toBe('node');
  const script = command.slice(1).find((a) => !a.startsWith('-'));
  expect(script).toMatch(/^dist\/.+\.js$/);
  return script!.replace(/^dist\//, '').replace(/\.js$/, '.ts');
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
function dockerfile(): { op: string; args: string }[] {
  const joined = read('Dockerfile')
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const m = /^(\S+)\s*(.*)$/.exec(line)!;
      return { op: m[1].toUpperCase(), args: m[2] };
    });
}

describe('docker-compose.yml', () => {
  test('defines redis, api and worker', () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['redis', 'api', 'worker']));
  });

  test('redis keeps jobs: AOF on, noeviction, a healthcheck and its own named volume', () => {
    const redis = services.redis;
    expect(String(redis.image)).toMatch(/^redis:7/);
    const args = argv(redis.command);
    const opt = (name: string): string | undefined => {
      const i = args.indexOf(`--${name}`);
      return i < 0 ? undefined : args[i + 1];
    };
    expect(args[0]).toBe('redis-server');
    expect(opt('appendonly')).toBe('yes');
    expect(opt('maxmemory-policy')).toBe('noeviction');
    const health = redis.healthcheck as { test?: unknown } | undefined;
    expect(argv(health?.test).join(' ')).toMatch(/redis-cli( .*)? ping/);
    const data = volumesOf('redis').find((v) => v.target === '/data');
    expect(data).toBeDefined();
    expect(Object.keys(compose.volumes ?? {})).toContain(data!.source);
    expect(data!.source).not.toBe('graft-data');
  });

  test('api and workers share one named volume at /data and say so in DATA_DIR', () => {
    const sources = ['api', 'worker'].map((name) => {
      const mount = volumesOf(name).find((v) => v.target === '/data');
      expect(mount).toBeDefined();
      expect(envOf(name).DATA_DIR).toBe('/data');
      return mount!.source;
    });
    expect(sources[0]).toBe(sources[1]);
    expect(Object.keys(compose.volumes ?? {})).toContain(sources[0]); // named, not a bind mount
  });

  test.each(['api', 'worker'])('%s environment: only graft settings, every value valid', (name) => {
    const env = envOf(name);
    expect(Object.keys(env).length).toBeGreaterThan(0);
    for (const key of Object.keys(env)) expect(CONFIG_NAMES).toContain(key);
    const cfg = loadConfig(env); // throws ConfigError naming the bad variable
    expect(cfg.REDIS_URL).toBe('redis://redis:6379');
    for (const [key, value] of Object.entries(env)) expect(String(cfg[key as keyof typeof cfg])).toBe(value);
  });

  test('api listens on 0.0.0.0 at the published port', () => {
    const cfg = loadConfig(envOf('api'));
    expect(cfg.HOST).toBe('0.0.0.0');
    const published = ((services.api.ports ?? []) as unknown[]).map((p) =>
      typeof p === 'object' && p ? String((p as { target?: unknown }).target) : String(p).split(':').pop()!.split('/')[0],
    );
    expect(published).toContain(String(cfg.PORT));
    expect(services.api.healthcheck).toBeDefined();
    expect(argv((services.api.healthcheck as { test?: unknown }).test).join(' ')).toContain(`:${cfg.PORT}/healthz`);
  });

  test('api requires API keys, keeps its admin key on the volume and publishes its port on 127.0.0.1 only', () => {
    const cfg = loadConfig(envOf('api'));
    expect(cfg.GRAFT_AUTH).toBe('required');
    const volume = volumesOf('api').find((v) => v.target === '/data');
    expect(cfg.GRAFT_ADMIN_KEY_FILE).toMatch(/^\/data\/|^\/run\/secrets\//);
    expect(volume).toBeDefined();
    expect(envOf('api').GRAFT_ADMIN_KEY).toBeUndefined(); // never a secret in the compose file
    for (const name of Object.keys(services)) {
      for (const p of (services[name].ports ?? []) as unknown[]) {
        const hostIp = typeof p === 'object' && p ? String((p as { host_ip?: unknown }).host_ip) : String(p).split(':').length === 3 ? String(p).split(':')[0] : '';
        expect(`${name}: ${hostIp}`).toBe(`${name}: 127.0.0.1`);
      }
    }
  });

  test('api healthcheck would catch a stuck API: a node one-liner on /healthz whose own timeout fires first', () => {
    const health = services.api.healthcheck as { test?: unknown; interval?: string; timeout?: string; retries?: number };
    const [kind, ...command] = argv(health.test);
    expect(kind).toBe('CMD');
    expect(command.slice(0, 2)).toEqual(['node', '-e']);
    const script = command.slice(2).join(' ');
    expect(script).toMatch(/fetch\(['"]http:\/\/127\.0\.0\.1:\d+\/healthz['"]/);
    const fetchTimeout = /AbortSignal\.timeout\((\d+)\)/.exec(script);
    expect(fetchTimeout).not.toBeNull();
    const seconds = (v: string | undefined) => Number(/^(\d+)s$/.exec(String(v))?.[1] ?? NaN);
    // The probe gives up (exit 1) before Docker kills it, and probes again before long.
    expect(Number(fetchTimeout![1])).toBeLessThan(seconds(health.timeout) * 1000);
    expect(seconds(health.timeout)).toBeLessThan(seconds(health.interval));
    expect(health.retries).toBeGreaterThanOrEqual(1);
    expect(script).toMatch(/process\.exit\(1\)/);
  });

  test.each([
    ['api', 'src/server.ts'],
    ['worker', 'workers/main.ts'],
  ])('%s command runs the compiled %s', (name, source) => {
    const command = argv(services[name].command);
    expect(sourceOf(command)).toBe(source);
    expect(existsSync(path.join(ROOT, source)) ? source : `${source} does not exist`).toBe(source);
    // ...and the production build compiles that folder.
    const build = JSON.parse(read('tsconfig.build.json')) as { include?: string[] };
    expect(build.include).toContain(source.split('/')[0]);
  });

  test('worker: 2 replicas, waits for a healthy redis, time to checkpoint on stop', () => {
    const worker = services.worker;
    expect((worker.deploy as { replicas?: number } | undefined)?.replicas).toBe(2);
    expect(dependsOnHealthyRedis('worker')).toBe(true);
    expect(dependsOnHealthyRedis('api')).toBe(true);
    const grace = /^(\d+)s$/.exec(String(worker.stop_grace_period));
    expect(grace).not.toBeNull();
    expect(Number(grace![1])).toBeGreaterThanOrEqual(30);
    expect(loadConfig(envOf('worker')).GRAFT_BACKEND).toBe('tensorflow');
  });
});

describe('Dockerfile', () => {
  const ins = dockerfile();
  const lastFrom = ins.map((i) => i.op).lastIndexOf('FROM');
  const runtime = ins.slice(lastFrom);

  test('every stage is node:22-bookworm-slim (tfjs-node 4.22 breaks on Node >= 23)', () => {
    const froms = ins.filter((i) => i.op === 'FROM');
    expect(froms.length).toBeGreaterThanOrEqual(1);
    for (const f of froms) expect(f.args.split(/\s+/)[0]).toBe('node:22-bookworm-slim');
  });

  test('runs as a non-root user with a healthcheck', () => {
    const users = runtime.filter((i) => i.op === 'USER').map((i) => i.args.split(':')[0]);
    expect(users.length).toBeGreaterThan(0);
    expect(['root', '0']).not.toContain(users[users.length - 1]);
    const health = runtime.filter((i) => i.op === 'HEALTHCHECK');
    expect(health).toHaveLength(1);
    expect(health[0].args).toMatch(/\/healthz/);
    expect(health[0].args).not.toMatch(/^NONE/i);
  });

  test('the build fails if @tensorflow/tfjs-node cannot be required', () => {
    const runs = ins.filter((i) => i.op === 'RUN');
    expect(runs.some((r) => /node\s+-e\s+.*require\(\s*['"]@tensorflow\/tfjs-node['"]\s*\)/.test(r.args))).toBe(true);
  });

  test('ENV sets only graft settings (plus NODE_ENV), all valid; default CMD is the api', () => {
    const env: Record<string, string> = {};
    for (const i of runtime.filter((x) => x.op === 'ENV')) {
      for (const m of i.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)) env[m[1]] = m[2].replace(/^"|"$/g, '');
    }
    expect(env.NODE_ENV).toBe('production');
    delete env.NODE_ENV;
    for (const key of Object.keys(env)) expect(CONFIG_NAMES).toContain(key);
    expect(loadConfig(env)).toMatchObject({ DATA_DIR: '/data', HOST: '0.0.0.0', GRAFT_BACKEND: 'tensorflow' });
    const cmd = runtime.filter((i) => i.op === 'CMD').pop();
    expect(cmd).toBeDefined();
    expect(sourceOf(JSON.parse(cmd!.args) as string[])).toBe('src/server.ts');
    expect(runtime.some((i) => i.op === 'EXPOSE' && i.args.split(/\s+/).includes('3000'))).toBe(true);
  });
});
