import type { IncomingHttpHeaders } from 'node:http';
import { ROLES, TENANT_PATTERN, type Authenticator, type Principal, type Role } from '../../src/auth/principal';
import { GraftError } from '../../src/errors';

/**
 * TEST ONLY: an Authenticator that trusts `Authorization: Bearer test:<tenant>:<role>` as is, so
 * storage tests can act as several tenants before real API keys exist on this branch. It never
 * ships (nothing under src/ imports it); the merge replaces it with keys from the key store.
 */
export class TestAuthenticator implements Authenticator {
  async authenticate(headers: IncomingHttpHeaders): Promise<Principal> {
    const match = /^Bearer test:([^:]+):([a-z]+)$/.exec(String(headers.authorization ?? ''));
    if (!match || !new RegExp(TENANT_PATTERN).test(match[1]) || !(ROLES as readonly string[]).includes(match[2])) {
      throw new GraftError('unauthorized', 'A valid API key is required.', { statusCode: 401 });
    }
    return { keyId: `test-${match[1]}-${match[2]}`, keyName: 'test', tenant: match[1], role: match[2] as Role };
  }
}

/** The Authorization header of TestAuthenticator for `tenant` and `role`. */
export const testKey = (tenant: string, role: Role = 'member'): string => `Bearer test:${tenant}:${role}`;
