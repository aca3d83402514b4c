import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../services';

const Check = Type.Object({ ok: Type.Boolean(), error: Type.Optional(Type.String()) });

export const healthRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get('/healthz', { schema: { tags: ['health'], summary: 'The process is alive', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }));

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Redis answers and the volume is writable',
        response: { 200: Type.Object({ status: Type.String(), checks: Type.Object({ redis: Check, volume: Check }) }), 503: Type.Object({ status: Type.String(), checks: Type.Object({ redis: Check, volume: Check }) }) },
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
      const [redis, volume] = await Promise.all([run(deps.health.redis), run(deps.health.volume)]);
      const ok = redis.ok && volume.ok;
      return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not_ready', checks: { redis, volume } });
    },
  );
};
