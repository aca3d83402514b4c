import path from 'node:path';
import pino from 'pino';
import { UntrustedPool } from '../../src/api/untrusted-pool';
import type { GraftError } from '../../src/errors';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'pool-tasks.js');

/** The pool with test tasks; `run` is typed to graft's task names, so the fixtures go through an untyped view. */
function makePool(overrides: Partial<ConstructorParameters<typeof UntrustedPool>[0]> = {}) {
  const pool = new UntrustedPool({ threads: 1, taskTimeoutMs: 2000, maxHeapMb: 64, maxQueue: 4, logger: pino({ level: 'silent' }), filename: FIXTURE, ...overrides });
  const run = (name: string, input: unknown = null) => (pool.run as (n: string, i: unknown) => Promise<unknown>)(name, input);
  return { pool, run };
}

describe('UntrustedPool', () => {
  it('returns a task value, and rebuilds a task\'s GraftError with its code, param and status', async () => {
    const { pool, run } = makePool();
    try {
      await expect(run('echo', { a: 1 })).resolves.toEqual({ a: 1 });
      await expect(run('refuse')).rejects.toMatchObject({ code: 'not_allowed', param: '/x', statusCode: 422 });
    } finally {
      await pool.close();
    }
  });

  it('kills a task past its time limit with a 422 naming the limit, and replaces the thread', async () => {
    const { pool, run } = makePool({ taskTimeoutMs: 300 });
    try {
      const started = Date.now();
      const err = (await run('spin', { ms: 60_000 }).catch((e) => e)) as GraftError;
      expect(Date.now() - started).toBeLessThan(5000);
      expect(err).toMatchObject({ code: 'time_limit_exceeded', statusCode: 422 });
      expect(err.message).toContain('POOL_TASK_TIMEOUT_MS');
      await expect(run('echo', 'after')).resolves.toBe('after');
    } finally {
      await pool.close();
    }
  });

  it('a task with a limit of its own (upload checks) is stopped past it, and the error names that limit', async () => {
    const { pool } = makePool({ taskTimeoutMs: 30_000 });
    const run = pool.run as (n: string, i: unknown, o: { timeoutMs: number; limitName: string }) => Promise<unknown>;
    try {
      const err = (await run.call(pool, 'spin', { ms: 60_000 }, { timeoutMs: 300, limitName: 'UPLOAD_CHECK_TIMEOUT_MS' }).catch((e) => e)) as GraftError;
      expect(err).toMatchObject({ code: 'time_limit_exceeded', statusCode: 422, details: { limit: 'UPLOAD_CHECK_TIMEOUT_MS', max: 300 } });
      expect(err.message).toContain('UPLOAD_CHECK_TIMEOUT_MS');
    } finally {
      await pool.close();
    }
  });

  it('kills a task over its heap limit with a 422 naming the limit, and replaces the thread', async () => {
    const { pool, run } = makePool({ maxHeapMb: 48, taskTimeoutMs: 30_000 });
    try {
      const err = (await run('hog').catch((e) => e)) as GraftError;
      expect(err).toMatchObject({ code: 'memory_limit_exceeded', statusCode: 422 });
      expect(err.message).toContain('POOL_TASK_MAX_HEAP_MB');
      await expect(run('echo', 'after')).resolves.toBe('after');
    } finally {
      await pool.close();
    }
  });

  it('answers 503 with Retry-After when its queue is full instead of queueing without bound', async () => {
    const { pool, run } = makePool({ maxQueue: 2, taskTimeoutMs: 5000 });
    try {
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => run('spin', { ms: 300 })));
      const refused = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason as GraftError);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3); // one running + two queued
      expect(refused.length).toBeGreaterThan(0);
      for (const e of refused) expect(e).toMatchObject({ code: 'pool_saturated', statusCode: 503, retryAfterSeconds: 1 });
    } finally {
      await pool.close();
    }
  });

  it('close() is idempotent and later runs are refused cleanly', async () => {
    const { pool, run } = makePool();
    await Promise.all([pool.close(), pool.close()]);
    await expect(run('echo', 1)).rejects.toMatchObject({ code: 'shutting_down', statusCode: 503 });
  });
});
