import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ApiLimits } from '../app';
import type { AppDeps } from '../services';
import { checkpointRoutes } from './checkpoints';
import { datasetRoutes } from './datasets';
import { jobRoutes } from './jobs';
import { tenantRoutes } from './tenants';
import { uploadRoutes } from './uploads';

/**
 * Every versioned resource, registered under the `/v1` prefix (app.ts). Hooks that apply to the
 * whole public API (authentication, rate limits) hang on this plugin's scope, not on each route;
 * the health and documentation routes stay outside it.
 */
export const v1Routes: FastifyPluginAsyncTypebox<{ deps: AppDeps; limits: ApiLimits }> = async (app, { deps, limits }) => {
  // Who is calling, before any body is read: a request without a valid key costs no parsing.
  app.decorateRequest('principal', null as never);
  app.addHook('onRequest', async (request) => {
    request.principal = await deps.auth.authenticate(request.headers);
  });
  await app.register(jobRoutes, { deps, limits });
  await app.register(checkpointRoutes, { deps });
  await app.register(datasetRoutes, { deps });
  await app.register(uploadRoutes, { deps });
  await app.register(tenantRoutes, { deps });
};
