import rateLimit from '@fastify/rate-limit';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { actingPrincipal, checkAccess, requiredAccess } from '../../auth/access';
import { GraftError, UnauthorizedError } from '../../errors';
import type { ApiLimits } from '../app';
import type { AppDeps } from '../services';
import { auditRoutes } from './audit';
import { checkpointRoutes } from './checkpoints';
import { datasetRoutes } from './datasets';
import { jobRoutes } from './jobs';
import { keyRoutes } from './keys';
import { predictRoutes } from './predict';
import { tenantRoutes } from './tenants';
import { uploadRoutes } from './uploads';

/**
 * Every versioned resource, registered under the `/v1` prefix (app.ts). Hooks that apply to the
 * whole public API (authentication, roles, rate limits) hang on this plugin's scope, not on each
 * route; the health and documentation routes stay outside it.
 */
export const v1Routes: FastifyPluginAsyncTypebox<{ deps: AppDeps; limits: ApiLimits }> = async (app, { deps, limits }) => {
  // Who is calling and whether its role may do this, before any body is read: a request without
  // a valid key costs no parsing.
  app.decorateRequest('principal', null as never);
  /** Counts a request that failed authentication against its IP's budget (set below when rate limits are on). */
  let countUnauthenticated: ((request: FastifyRequest, reply: FastifyReply) => Promise<unknown>) | null = null;
  app.addHook('onRequest', async (request, reply) => {
    try {
      request.principal = actingPrincipal(await deps.auth.authenticate(request.headers), request.headers);
    } catch (err) {
      if (err instanceof UnauthorizedError) {
        reply.header('www-authenticate', 'Bearer realm="graft"');
        // The limiter's own hook runs after this one, so a refused key would never be counted and
        // guessing keys would be unlimited. Counted here by IP (no principal): past the budget the
        // answer is 429 instead of 401.
        await countUnauthenticated?.(request, reply);
      }
      throw err;
    }
    const access = requiredAccess(request.method, request.routeOptions.config?.access);
    checkAccess(request.principal, access, `${request.method} ${request.routeOptions.url ?? request.url}`);
  });
  // Per key (per IP for the open API and for requests whose key was refused), counted in Redis so
  // every API process shares the budget. Its hook is added to each route below, so it runs after
  // the authentication hook above.
  if (limits.rateLimitPerMinute > 0) {
    await app.register(rateLimit, {
      max: limits.rateLimitPerMinute,
      timeWindow: 60_000,
      hook: 'onRequest',
      redis: deps.rateLimitStore.redis,
      nameSpace: deps.rateLimitStore.nameSpace,
      keyGenerator: (request) => request.principal?.keyId ?? request.ip,
      errorResponseBuilder: (_request, ctx) =>
        new GraftError('rate_limited', `This key made more than ${ctx.max} requests in a minute (RATE_LIMIT_PER_MINUTE); retry in ${ctx.after}.`, {
          statusCode: 429,
          retryAfterSeconds: Math.max(1, Math.ceil(ctx.ttl / 1000)),
        }),
    });
    countUnauthenticated = app.rateLimit();
  }
  await app.register(jobRoutes, { deps, limits });
  await app.register(checkpointRoutes, { deps });
  await app.register(predictRoutes, { deps, limits: limits.predict });
  await app.register(datasetRoutes, { deps });
  await app.register(uploadRoutes, { deps });
  await app.register(keyRoutes, { deps });
  await app.register(auditRoutes, { deps });
  await app.register(tenantRoutes, { deps });
};
