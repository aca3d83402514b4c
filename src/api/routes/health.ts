import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { EXEMPT_FROM_LOAD_SHEDDING } from '../load-shedding';
import type { AppDeps } from '../services';

const Check = Type.Object({ ok: Type.Boolean(), error: Type.Optional(Type.String()) });

export const healthRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  // Liveness: no I/O, and answered even while the process sheds load (a saturated API is alive;
  // restarting it would lose its streams). A stuck event loop cannot answer it at all.
  app.get(
    '/healthz',
    { config: EXEMPT_FROM_LOAD_SHEDDING, schema: { tags: ['health'], summary: 'The process is alive', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  );

  const Readiness = Type.Object({ status: Type.String(), checks: Type.Object({ redis: Check, volume: Check, load: Check }) });
  // Readiness reports load shedding in its own shape (a load balancer then routes elsewhere).
  app.get(
    '/readyz',
    {
      config: EXEMPT_FROM_LOAD_SHEDDING,
      schema: {
        tags: ['health'],
        summary: 'Redis answers, the volume is writable and the process is not shedding load',
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (_request, reply) => {
      const run = async (fn: () => Promise<void>) => {
        try {
          await fn();
          return { ok: true };
        } catch (err) {
          return { ok: false, error: (err as Error).message };
        }
      };
      const load = app.isUnderPressure() ? { ok: false, error: 'overloaded: shedding load' } : { ok: true };
      const [redis, volume] = await Promise.all([run(deps.health.redis), run(deps.health.volume)]);
      const ok = redis.ok && volume.ok && load.ok;
      return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not_ready', checks: { redis, volume, load } });
    },
  );
};
