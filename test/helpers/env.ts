import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../src/config';

/** Tests use the Redis at REDIS_URL (default the local one) with a private queue name each. */
export const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const DIST = path.join(REPO_ROOT, 'dist');

export function uniqueQueueName(prefix = 'test'): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

export async function makeTempDir(prefix = 'graft-test-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export interface TestEnv {
  config: Readonly<Config>;
  env: Record<string, string>;
  dataDir: string;
  queueName: string;
  cleanup(): Promise<void>;
}

/** A private DATA_DIR and queue on the shared Redis; cleanup removes both. */
export async function makeTestEnv(overrides: Record<string, string> = {}): Promise<TestEnv> {
  const dataDir = await makeTempDir();
  const queueName = uniqueQueueName();
  const env: Record<string, string> = {
    REDIS_URL: TEST_REDIS_URL,
    DATA_DIR: dataDir,
    QUEUE_NAME: queueName,
    LOG_LEVEL: 'warn',
    GRAFT_BACKEND: 'auto',
    // Tests that are not about access control act as the default tenant's admin (HOST is loopback);
    // test/api/auth*.test.ts and the tenant matrix turn authentication on.
    GRAFT_AUTH: 'off',
    // Load shedding off by default: a jest process is not an API process (it loads TensorFlow.js,
    // builds networks on its loop, accumulates test modules), so its delay and memory say nothing.
    // test/api/budgets.test.ts turns it on.
    PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
    PRESSURE_MAX_HEAP_USED_MB: '0',
    PRESSURE_MAX_RSS_MB: '0',
    // Upload tests upload far more than a tenant may per minute; test/api/tenant-storage.test.ts
    // turns the per-tenant upload rate on.
    TENANT_UPLOADS_PER_MINUTE: '0',
    ...overrides,
  };
  return {
    config: loadConfig(env),
    env,
    dataDir,
    queueName,
    async cleanup() {
      await deleteQueueKeys(queueName);
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function deleteQueueKeys(queueName: string): Promise<void> {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    for (const pattern of [`graft:${queueName}:*`, `bull:${queueName}:*`]) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
    }
  } finally {
    await redis.quit();
  }
}

export async function waitFor<T>(fn: () => Promise<T | null | undefined | false>, timeoutMs: number, what: string, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
