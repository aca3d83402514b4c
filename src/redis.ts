import { Redis, type RedisOptions } from 'ioredis';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/**
 * A connection for graft's own commands. `maxRetriesPerRequest: null` is what BullMQ workers
 * require; API connections fail fast instead so a request never hangs on a dead Redis.
 */
export function createRedis(url: string | undefined, opts: { forWorker?: boolean } & RedisOptions = {}): Redis {
  const { forWorker, ...rest } = opts;
  return new Redis(url ?? DEFAULT_REDIS_URL, {
    maxRetriesPerRequest: forWorker ? null : 3,
    enableOfflineQueue: true,
    lazyConnect: false,
    ...rest,
  });
}
