import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Every graft API key starts with this, so a leaked one is recognisable (secret scanners, logs). */
export const API_KEY_PREFIX = 'gk_';
/** `gk_` + base64url of 32 random bytes (256 bits of entropy). */
export const API_KEY_PATTERN = /^gk_[A-Za-z0-9_-]{43}$/;
export const KEY_ID_PATTERN = '^key_[0-9a-f]{16}$';

export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(32).toString('base64url');
}

export function generateKeyId(): string {
  return `key_${randomBytes(8).toString('hex')}`;
}

/**
 * What is stored instead of the secret. A plain sha256 is enough (no salt, no slow KDF): the input
 * is 256 random bits, not a password, so it cannot be guessed, and the hash must be an index.
 */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Constant-time comparison of two hex hashes (the bootstrap admin key is checked without Redis). */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}
