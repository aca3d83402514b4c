import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { NotFoundError } from '../../errors';
import { NameParams, deleteRouteSchema } from '../schemas/common';
import { DatasetDescriptionSchema, DatasetSummarySchema } from '../schemas/datasets';
import { ErrorResponseSchema } from '../schemas/errors';
import type { AppDeps } from '../services';
import { inUse } from './in-use';

/** Datasets: list, describe, delete (uploads are in uploads.ts). */
export const datasetRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get(
    '/datasets',
    { schema: { tags: ['datasets'], summary: 'List datasets', response: { 200: Type.Object({ data: Type.Array(DatasetSummarySchema) }) } } },
    async () => ({ data: await deps.datasets.list() }),
  );

  app.get(
    '/datasets/:name',
    {
      schema: {
        tags: ['datasets'],
        summary: 'Describe a dataset: format, input shape, classes, counts per split',
        params: NameParams,
        response: { 200: DatasetDescriptionSchema, 400: ErrorResponseSchema, 404: ErrorResponseSchema, 422: ErrorResponseSchema },
      },
    },
    async (request) => deps.datasets.describe(request.params.name),
  );

  app.delete('/datasets/:name', { schema: deleteRouteSchema('dataset') }, async (request, reply) => {
    const { name } = request.params;
    if (!(await deps.datasets.exists(name))) throw new NotFoundError('dataset_not_found', `There is no dataset "${name}".`, null);
    const users = await deps.jobs.usersOf('dataset', name);
    if (users.length > 0) throw inUse('dataset', name, users);
    await deps.datasets.remove(name);
    return reply.status(204).send(null);
  });
};
