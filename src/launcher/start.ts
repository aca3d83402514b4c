/**
 * `npm start`: all of graft on one machine with the embedded defaults — the API, one worker
 * process and, when REDIS_URL is unset, a private redis-server keeping its AOF in DATA_DIR/redis.
 *
 * Children run in their own process groups, so a terminal Ctrl-C reaches only this launcher, which
 * then stops things in order: SIGTERM to api and worker (the worker checkpoints), wait, and only
 * then the private Redis (a stopping worker still needs it). If any child dies on its own, the
 * launcher stops the rest and exits non-zero.
 *
 * On a terminal the children's JSON log lines are shown through pino-pretty (a dev dependency:
 * `npm start` is the developer's command); piped or redirected, they stay JSON for log shippers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { adminKeyPath } from '../auth/admin-key';
import { loadConfig, type Config } from '../config';

const SERVER = path.join(__dirname, '..', 'server.js'); // dist/src/server.js (this file: dist/src/launcher/start.js)
const WORKER = path.join(__dirname, '..', '..', 'workers', 'main.js'); // dist/workers/main.js
const REDIS_START_MS = 20_000;
const APP_STOP_MS = 40_000; // a worker checkpoints on SIGTERM (compose allows 45 s)
const REDIS_STOP_MS = 15_000;
const READY_MS = 60_000;

interface Proc {
  name: string;
  child: ChildProcess;
}
let redis: Proc | undefined;
const apps: Proc[] = [];
let stopping: Promise<never> | undefined;

const log = (message: string): void => void process.stderr.write(`graft: ${message}\n`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const exited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null;

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir || '.', command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.pid === undefined || exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

type PrettyFactory = (opts: Record<string, unknown>) => NodeJS.WritableStream;

/** pino-pretty when stdout is a terminal and the package is installed; else null (JSON lines). */
function prettyLogs(): PrettyFactory | null {
  if (!process.stdout.isTTY || process.env.NO_PRETTY_LOGS) return null;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('pino-pretty') as PrettyFactory;
  } catch {
    return null; // installed without dev dependencies
  }
}
const pretty = prettyLogs();

/** Starts a child in its own process group; its unexpected death (or failure to start) stops everything. */
function launch(name: string, command: string, args: string[], env: NodeJS.ProcessEnv, hint = '', logs: 'pretty' | 'raw' = 'pretty'): Proc {
  const prettify = logs === 'pretty' ? pretty : null;
  const child = spawn(command, args, { env, stdio: ['ignore', prettify ? 'pipe' : 'inherit', 'inherit'], detached: true });
  if (prettify && child.stdout) child.stdout.pipe(prettify({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', destination: 1 }));
  child.on('error', (err) => {
    log(`${name}: ${err.message}${hint}`);
    void stop(1);
  });
  child.on('exit', (code, signal) => {
    if (stopping) return;
    log(`${name} exited unexpectedly (${signal ?? `exit code ${code}`}); stopping everything${hint}`);
    void stop(1);
  });
  return { name, child };
}

async function terminate({ name, child }: Proc, ms: number): Promise<void> {
  if (child.pid === undefined || exited(child)) return;
  child.kill('SIGTERM');
  if (await waitExit(child, ms)) return;
  log(`${name} did not stop within ${ms / 1000} s; killing it`);
  child.kill('SIGKILL');
  await waitExit(child, 5_000);
}

/** Stops api and worker, then the private Redis (SIGTERM: it flushes the AOF), then exits. Idempotent. */
function stop(code: number): Promise<never> {
  stopping ??= (async () => {
    await Promise.all(apps.map((p) => terminate(p, APP_STOP_MS)));
    if (redis) await terminate(redis, REDIS_STOP_MS);
    process.exit(code);
  })();
  return stopping;
}

async function waitForPing(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + REDIS_START_MS;
  for (;;) {
    if (exited(child)) throw new Error(`redis-server exited while starting (${child.signalCode ?? `exit code ${child.exitCode}`})`);
    const client = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 1_000 });
    client.on('error', () => undefined); // failures surface through connect()/ping()
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') return;
    } catch {
      // not up yet (or still loading its AOF)
    } finally {
      client.disconnect();
    }
    if (Date.now() > deadline) throw new Error(`redis-server did not answer PING at ${url} within ${REDIS_START_MS / 1000} s`);
    await sleep(100);
  }
}

async function startPrivateRedis(dataDir: string): Promise<string> {
  if (!onPath('redis-server')) {
    log(
      [
        'REDIS_URL is not set and there is no redis-server on PATH. Either:',
        '  - install Redis 7 (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) and run npm start again,',
        '  - or point graft at a running Redis: REDIS_URL=redis://host:6379 npm start,',
        '  - or run everything in containers: docker compose up --build',
      ].join('\n'),
    );
    process.exit(1);
  }
  const dir = path.resolve(dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const logFile = path.join(dir, 'redis.log');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--daemonize', 'no', '--logfile', logFile];
  redis = launch('redis-server', 'redis-server', args, process.env, ` (see ${logFile})`, 'raw');
  await waitForPing(url, redis.child).catch((err: Error) => {
    throw new Error(`${err.message} (see ${logFile})`);
  });
  log(`private Redis at ${url} (data in ${dir})`);
  return url;
}

async function announce(cfg: Readonly<Config>): Promise<void> {
  const host = cfg.HOST === '0.0.0.0' || cfg.HOST === '::' ? '127.0.0.1' : cfg.HOST.includes(':') ? `[${cfg.HOST}]` : cfg.HOST;
  const base = `http://${host}:${cfg.PORT}`;
  const deadline = Date.now() + READY_MS;
  while (!stopping && Date.now() < deadline) {
    const ok = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false);
    if (ok) break;
    await sleep(250);
  }
  if (stopping) return;
  if (Date.now() >= deadline) log(`the API has not answered ${base}/healthz within ${READY_MS / 1000} s`);
  process.stdout.write(`graft is running: API ${base}  docs ${base}/docs  (Ctrl-C to stop)\n`);
  process.stdout.write(authLine(cfg) + '\n');
}

/** Where the admin key is (never the key), or the one loud line of an open API. */
function authLine(cfg: Readonly<Config>): string {
  if (cfg.GRAFT_AUTH === 'off') return `WARNING: GRAFT_AUTH=off: authentication is DISABLED; anyone who can reach ${cfg.HOST}:${cfg.PORT} is admin`;
  if (cfg.GRAFT_ADMIN_KEY) return 'admin API key: the value of GRAFT_ADMIN_KEY (send it as Authorization: Bearer <key>)';
  const file = path.resolve(cfg.GRAFT_ADMIN_KEY_FILE ?? adminKeyPath(cfg.DATA_DIR));
  return `admin API key: in ${file} (the graft CLI reads it; paste it in the dashboard; create more with POST /v1/keys)`;
}

async function main(): Promise<void> {
  let cfg: Readonly<Config>;
  try {
    cfg = loadConfig();
  } catch (err) {
    log((err as Error).message);
    process.exit(1);
  }
  for (const file of [SERVER, WORKER]) {
    if (!existsSync(file)) {
      log(`${file} is missing; build first (npm run build)`);
      process.exit(1);
    }
  }
  let signalled = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      // npm may forward the terminal's SIGINT a second time: ignore repeats, the stop is bounded anyway.
      if (signalled) return;
      signalled = true;
      log(`${signal}: stopping (workers get up to ${APP_STOP_MS / 1000} s to checkpoint)`);
      void stop(0);
    });
  }

  const redisUrl = cfg.REDIS_URL ?? (await startPrivateRedis(cfg.DATA_DIR));
  if (stopping) return;
  const env = { ...process.env, REDIS_URL: redisUrl };
  apps.push(launch('api', process.execPath, [SERVER], env), launch('worker', process.execPath, [WORKER], env));
  await announce(cfg);
}

main().catch((err: unknown) => {
  log(err instanceof Error ? err.message : String(err));
  void stop(1);
});
