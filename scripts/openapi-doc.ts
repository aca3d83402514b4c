import { buildApp } from '../src/api/app';
import { DEFAULT_CONFIG } from '../src/config';
import type { AppDeps } from '../src/api/services';

/**
 * The OpenAPI document comes from the route schemas alone, so it can be generated without Redis
 * or a volume: routes are registered but never called (rate limits off: their store is Redis).
 */
export async function generateOpenApi(): Promise<Record<string, unknown>> {
  const unused = new Proxy({}, { get: () => { throw new Error('not available while generating the OpenAPI document'); } }) as AppDeps;
  const app = await buildApp({ config: { ...DEFAULT_CONFIG, LOG_LEVEL: 'silent', RATE_LIMIT_PER_MINUTE: 0 }, deps: unused, logger: false });
  await app.ready();
  const doc = app.swagger() as unknown as Record<string, unknown>;
  await app.close();
  return doc;
}

export const OPENAPI_PATH = 'openapi/openapi.json';
