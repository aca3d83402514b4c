import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildApp } from '../../src/api/app';
import { createServices, type Services } from '../../src/api/services';
import type { AuditSink } from '../../src/auth/audit';
import type { Authenticator } from '../../src/auth/principal';
import type { TestEnv } from './env';

export interface TestApp {
  app: FastifyInstance;
  services: Services;
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** Replaces the authenticator the config selects (e.g. test/helpers/test-auth.ts). */
  auth?: Authenticator;
  /** Records what the routes audit (e.g. an array sink to assert on). */
  audit?: AuditSink;
}

/** The real app on a private queue and DATA_DIR (fastify/demo style: build, inject, close). */
export async function buildTestApp(env: TestEnv, opts: TestAppOptions = {}): Promise<TestApp> {
  const services = await createServices(env.config, pino({ level: 'silent' }));
  if (opts.auth) services.deps.auth = opts.auth;
  if (opts.audit) {
    // The real audit log still records; the test's sink sees every entry too.
    const log = services.deps.audit;
    const extra = opts.audit;
    services.deps.audit = {
      record: async (entry) => {
        await extra.record(entry);
        await log.record(entry);
      },
      list: (query) => log.list(query),
    };
  }
  const app = await buildApp({ config: env.config, deps: services.deps, logger: process.env.DEBUG_TEST_LOG ? pino({ level: 'error' }) : false }); // DEBUG_TEST_LOG=1: see a 500's cause
  await app.ready();
  return {
    app,
    services,
    async close() {
      await app.close();
      await services.close();
    },
  };
}
