import type { IncomingHttpHeaders } from 'node:http';
import type { Redis } from 'ioredis';
import { UnauthorizedError, UnavailableError } from '../errors';
import { API_KEY_PATTERN, hashApiKey, sameHash } from './api-key';
import type { KeyStore } from './key-store';
import { DEFAULT_TENANT, type Authenticator, type Principal } from './principal';

/** The principal of the bootstrap key (GRAFT_ADMIN_KEY / _FILE / DATA_DIR/.secrets/admin.key). */
export const BOOTSTRAP_PRINCIPAL: Readonly<Principal> = Object.freeze({ keyId: 'bootstrap-admin', keyName: 'GRAFT_ADMIN_KEY', tenant: DEFAULT_TENANT, role: 'admin' });

/** Lookups remembered at most; beyond it the oldest go (a flood of distinct keys cannot grow memory). */
const CACHE_MAX_ENTRIES = 10_000;
/** Retry-After when the key store is unreachable. */
const RETRY_AFTER_SECONDS = 5;
const BEARER = /^Bearer +(\S+) *$/i;

export interface KeyAuthenticatorOptions {
  store: KeyStore;
  /** A connection of its own: once subscribed, a Redis connection can do nothing else. */
  subscriber: Redis;
  /** Channel the KeyStore publishes revoked hashes on. */
  revocationChannel: string;
  /** How long a successful lookup is reused (AUTH_CACHE_MS). */
  cacheMs: number;
  /** sha256 of the bootstrap admin key, or null. */
  adminKeyHash: string | null;
}

/**
 * `Authorization: Bearer <key>` → principal, for GRAFT_AUTH=required. A key is looked up in Redis
 * once per AUTH_CACHE_MS per process; a revocation is published on a channel every process listens
 * to, so a revoked key stops everywhere at once (and, should a message be lost while the subscriber
 * reconnects, within AUTH_CACHE_MS). Unknown and revoked keys get the same answer and the same
 * work (one index lookup that misses), so a 401 does not tell which.
 */
export class KeyAuthenticator implements Authenticator {
  private readonly cache = new Map<string, { principal: Principal; until: number }>();
  private closing: Promise<void> | null = null;

  constructor(private readonly opts: KeyAuthenticatorOptions) {
    opts.subscriber.on('message', (channel: string, hash: string) => {
      if (channel === opts.revocationChannel) this.cache.delete(hash);
    });
    // Messages published while the subscriber was away are lost: forget everything instead.
    opts.subscriber.on('ready', () => this.cache.clear());
  }

  /** Resolves once the revocation channel is subscribed (before the API serves a request). */
  async start(): Promise<void> {
    await this.opts.subscriber.subscribe(this.opts.revocationChannel);
  }

  async authenticate(headers: IncomingHttpHeaders): Promise<Principal> {
    const header = headers.authorization;
    if (header === undefined || header === '') {
      throw new UnauthorizedError('missing_api_key', 'This route needs an API key: send Authorization: Bearer <key>.');
    }
    const match = BEARER.exec(header);
    if (!match) throw new UnauthorizedError('malformed_authorization', 'The Authorization header must be "Bearer <key>".');
    const key = match[1];
    const hash = hashApiKey(key);
    if (this.opts.adminKeyHash && sameHash(hash, this.opts.adminKeyHash)) return { ...BOOTSTRAP_PRINCIPAL };
    const now = Date.now();
    const cached = this.cache.get(hash);
    if (cached && cached.until > now) return { ...cached.principal };
    // Not the shape of a graft key: no Redis round trip for garbage.
    const record = API_KEY_PATTERN.test(key)
      ? await this.opts.store.lookup(hash).catch(() => {
          // Redis unreachable: not the caller's fault, and not a reason to let it in.
          throw new UnavailableError('auth_unavailable', 'API keys cannot be checked right now (the key store is unreachable); retry shortly.', RETRY_AFTER_SECONDS);
        })
      : null;
    if (!record) {
      this.cache.delete(hash);
      throw new UnauthorizedError('invalid_api_key', 'The API key is not valid (unknown or revoked).');
    }
    const principal: Principal = { keyId: record.id, keyName: record.name, tenant: record.tenant, role: record.role };
    if (this.opts.cacheMs > 0) {
      if (this.cache.size >= CACHE_MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(hash, { principal, until: now + this.opts.cacheMs });
    }
    return { ...principal };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.cache.clear();
      await this.opts.subscriber.quit().catch(() => undefined);
    })();
    return this.closing;
  }
}
