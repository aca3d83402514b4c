import type { Redis } from 'ioredis';
import type { JobKeys } from '../jobs/keys';
import { generateApiKey, generateKeyId, hashApiKey } from './api-key';
import type { Role } from './principal';

/** An API key as stored and listed: never its secret, and its hash stays inside this class. */
export interface ApiKeyRecord {
  id: string;
  tenant: string;
  role: Role;
  name: string;
  createdAt: string;
  revokedAt: string | null;
}

/**
 * API keys in Redis (issue 11): a hash per key holding the sha256 of its secret and its metadata,
 * an index hash → id for the lookup a request makes, and a zset of ids for listing. The secret
 * leaves `create` once and is never stored. Revoking removes the index entry (so the key stops
 * resolving) and publishes the hash so every API process drops it from its cache at once.
 */
export class KeyStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: JobKeys,
  ) {}

  async create(input: { tenant: string; role: Role; name: string }): Promise<{ record: ApiKeyRecord; key: string }> {
    const key = generateApiKey();
    const record: ApiKeyRecord = { id: generateKeyId(), tenant: input.tenant, role: input.role, name: input.name, createdAt: new Date().toISOString(), revokedAt: null };
    const hash = hashApiKey(key);
    await this.redis
      .multi()
      .hset(this.keys.apiKey(record.id), { hash, id: record.id, tenant: record.tenant, role: record.role, name: record.name, createdAt: record.createdAt, revokedAt: '' })
      .hset(this.keys.apiKeysByHash, hash, record.id)
      .zadd(this.keys.apiKeys, Date.parse(record.createdAt), record.id)
      .exec();
    return { record, key };
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    const h = await this.redis.hgetall(this.keys.apiKey(id));
    return h.id ? toRecord(h) : null;
  }

  /** Oldest first; `tenant` narrows to one tenant's keys. Revoked keys stay listed with `revokedAt`. */
  async list(filter: { tenant?: string } = {}): Promise<ApiKeyRecord[]> {
    const ids = await this.redis.zrange(this.keys.apiKeys, '0', '-1');
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.keys.apiKey(id));
    const rows = (await pipeline.exec()) ?? [];
    return rows
      .map(([, h]) => h as Record<string, string>)
      .filter((h) => h?.id && (filter.tenant === undefined || h.tenant === filter.tenant))
      .map(toRecord);
  }

  /** The active key with this secret hash, or null (unknown or revoked). */
  async lookup(hash: string): Promise<ApiKeyRecord | null> {
    const id = await this.redis.hget(this.keys.apiKeysByHash, hash);
    if (!id) return null;
    const record = await this.get(id);
    return record && !record.revokedAt ? record : null;
  }

  /** Revokes the key (idempotent: a revoked key keeps its first revokedAt); null when there is no such key. */
  async revoke(id: string): Promise<ApiKeyRecord | null> {
    const h = await this.redis.hgetall(this.keys.apiKey(id));
    if (!h.id) return null;
    if (h.revokedAt) return toRecord(h);
    const revokedAt = new Date().toISOString();
    await this.redis.multi().hset(this.keys.apiKey(id), 'revokedAt', revokedAt).hdel(this.keys.apiKeysByHash, h.hash).exec();
    await this.redis.publish(this.keys.apiKeyRevocations, h.hash);
    return toRecord({ ...h, revokedAt });
  }
}

function toRecord(h: Record<string, string>): ApiKeyRecord {
  return { id: h.id, tenant: h.tenant, role: h.role as Role, name: h.name, createdAt: h.createdAt, revokedAt: h.revokedAt || null };
}
