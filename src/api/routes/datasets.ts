import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ErrorResponseSchema } from '../../jobs/types';
import { DatasetDescriptionSchema, DatasetSummarySchema } from '../../storage/datasets';
import { NAME_PATTERN } from '../../storage/names';
import type { AppDeps } from '../services';

const NameParams = Type.Object({ name: Type.String({ pattern: NAME_PATTERN }) }, { additionalProperties: false });

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
};
