import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { PUBLIC_TENANT } from '../../auth/principal';
import { datasetNotFound } from '../../storage/datasets';
import { assertAdmin, assertMayWrite } from '../../tenants/access';
import { NameParams, NamespaceQuery, deleteRouteSchema, emptyBodyAsObject, publishRouteSchema } from '../schemas/common';
import { DatasetDescriptionSchema, DatasetSummarySchema } from '../schemas/datasets';
import { ErrorResponseSchema } from '../schemas/errors';
import type { AppDeps } from '../services';
import { inUse } from './in-use';

/**
 * Datasets: list, describe, delete, publish (uploads are in uploads.ts), in the caller's tenant;
 * /v1/datasets/public/{name} is the shared namespace (see checkpoints.ts for the rules).
 */
export const datasetRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  const catalogOf = (tenant: string) => deps.datasets.forTenant(tenant);

  app.get(
    '/datasets',
    {
      schema: {
        tags: ['datasets'],
        summary: 'List datasets (yours, or the public ones with ?namespace=public)',
        querystring: NamespaceQuery,
        response: { 200: Type.Object({ data: Type.Array(DatasetSummarySchema) }) },
      },
    },
    async (request) => ({ data: await catalogOf(request.query.namespace === 'public' ? PUBLIC_TENANT : request.principal.tenant).list() }),
  );

  for (const ns of ['own', 'public'] as const) {
    const prefix = ns === 'own' ? '/datasets' : '/datasets/public';
    const tenantOf = (request: FastifyRequest) => (ns === 'own' ? request.principal.tenant : PUBLIC_TENANT);

    app.get(
      `${prefix}/:name`,
      {
        schema: {
          tags: ['datasets'],
          summary: `Describe a ${ns === 'own' ? '' : 'public '}dataset: format, input shape, classes, counts per split`,
          params: NameParams,
          response: { 200: DatasetDescriptionSchema, 400: ErrorResponseSchema, 404: ErrorResponseSchema, 422: ErrorResponseSchema },
        },
      },
      async (request) => catalogOf(tenantOf(request)).describe(request.params.name),
    );

    app.delete(`${prefix}/:name`, { schema: deleteRouteSchema('dataset', ns) }, async (request, reply) => {
      const { name } = request.params;
      const tenant = tenantOf(request);
      assertMayWrite(request.principal, tenant);
      const catalog = catalogOf(tenant);
      if (!(await catalog.exists(name))) throw datasetNotFound(name);
      const users = await deps.jobs.usersOf('dataset', name, tenant);
      if (users.length > 0) throw inUse('dataset', name, users);
      await catalog.remove(name);
      await deps.audit.record({ actor: request.principal, action: 'dataset.delete', target: { kind: 'dataset', tenant, id: name } });
      return reply.status(204).send(null);
    });
  }

  app.post(
    '/datasets/:name/publish',
    { config: { access: 'admin' }, preValidation: emptyBodyAsObject, schema: publishRouteSchema('dataset', DatasetDescriptionSchema) },
    async (request, reply) => {
      assertAdmin(request.principal);
      const { name } = request.params;
      const as = request.body.as ?? name;
      const from = request.principal.tenant;
      const published = await deps.publisher.dataset(from, name, as);
      await deps.audit.record({ actor: request.principal, action: 'dataset.publish', target: { kind: 'dataset', tenant: PUBLIC_TENANT, id: as }, details: { from: { tenant: from, name } } });
      return reply.status(201).send(published);
    },
  );
};
