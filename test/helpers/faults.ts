import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { TEST_REDIS_URL } from './env';

/** Pids of the direct children of `pid` (a worker's training child). */
export function childrenOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)]).toString().trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The pid named by a job record's `worker` field (host:pid). */
export const workerPid = (worker: unknown): number => Number(String(worker).split(':').pop());

/** Entries of a folder ([] if it does not exist). */
export const entries = (dir: string): Promise<string[]> => fs.readdir(dir).catch(() => [] as string[]);

export const checkpointNames = (dataDir: string): Promise<string[]> => entries(path.join(dataDir, 'tenants', 'default', 'checkpoints'));

/** Every Redis key of a test queue (graft's and BullMQ's) that contains `needle`. */
export async function keysContaining(queueName: string, needle: string): Promise<string[]> {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    const found: string[] = [];
    for (const pattern of [`graft:${queueName}:*`, `bull:${queueName}:*`]) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        found.push(...keys.filter((k) => k.includes(needle)));
      } while (cursor !== '0');
    }
    return found;
  } finally {
    await redis.quit();
  }
}

/** A small seeded generator (mulberry32), so a failing random schedule can be replayed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
