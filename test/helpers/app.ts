import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildApp } from '../../src/api/app';
import { createServices, type Services } from '../../src/api/services';
import type { TestEnv } from './env';

export interface TestApp {
  app: FastifyInstance;
  services: Services;
  close(): Promise<void>;
}

/** The real app on a private queue and DATA_DIR (fastify/demo style: build, inject, close). */
export async function buildTestApp(env: TestEnv): Promise<TestApp> {
  const services = await createServices(env.config, pino({ level: 'silent' }));
  const app = await buildApp({ config: env.config, deps: services.deps, logger: false });
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
