import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ErrorResponseSchema } from '../../jobs/types';
import { CheckpointDescriptionSchema, CheckpointSummarySchema } from '../../storage/checkpoints';
import { NAME_PATTERN } from '../../storage/names';
import type { AppDeps } from '../services';

const NameParams = Type.Object({ name: Type.String({ pattern: NAME_PATTERN }) }, { additionalProperties: false });

export const checkpointRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get(
    '/checkpoints',
    { schema: { tags: ['checkpoints'], summary: 'List checkpoints', response: { 200: Type.Object({ data: Type.Array(CheckpointSummarySchema) }) } } },
    async () => ({ data: await deps.checkpoints.list() }),
  );

  app.get(
    '/checkpoints/:name',
    {
      schema: {
        tags: ['checkpoints'],
        summary: 'Describe a checkpoint: layers (class, output shape, params, weights) and its manifest',
        params: NameParams,
        response: { 200: CheckpointDescriptionSchema, 400: ErrorResponseSchema, 404: ErrorResponseSchema, 422: ErrorResponseSchema },
      },
    },
    async (request) => deps.checkpoints.describe(request.params.name),
  );
};
