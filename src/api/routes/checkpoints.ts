import { PassThrough } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { NotFoundError } from '../../errors';
import { createTarGz, createZip } from '../../storage/archive';
import { CheckpointDescriptionSchema, CheckpointSummarySchema } from '../schemas/checkpoints';
import { NameParams, deleteRouteSchema } from '../schemas/common';
import { ErrorResponseSchema } from '../schemas/errors';
import type { AppDeps } from '../services';
import { inUse } from './in-use';

/** Checkpoints: list, describe, download, delete (uploads are in uploads.ts). */
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

  app.get(
    '/checkpoints/:name/archive',
    {
      schema: {
        tags: ['checkpoints'],
        summary: 'Download a checkpoint as one .tar.gz (or .zip with Accept: application/zip)',
        params: NameParams,
        produces: ['application/gzip', 'application/zip'],
        response: { 200: Type.Unsafe<unknown>({ description: 'The checkpoint archive, streamed.' }), 400: ErrorResponseSchema, 404: ErrorResponseSchema },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      if (!(await deps.checkpoints.exists(name))) throw new NotFoundError('checkpoint_not_found', `There is no checkpoint "${name}".`, null);
      const zip = String(request.headers.accept ?? '').includes('application/zip');
      const dir = await deps.checkpoints.folder(name);
      const out = new PassThrough();
      void (zip ? createZip(dir, out) : createTarGz(dir, out)).catch((err: Error) => out.destroy(err));
      return reply
        .header('content-type', zip ? 'application/zip' : 'application/gzip')
        .header('content-disposition', `attachment; filename="${name}.${zip ? 'zip' : 'tar.gz'}"`)
        .send(out);
    },
  );

  app.delete('/checkpoints/:name', { schema: deleteRouteSchema('checkpoint') }, async (request, reply) => {
    const { name } = request.params;
    if (!(await deps.checkpoints.exists(name))) throw new NotFoundError('checkpoint_not_found', `There is no checkpoint "${name}".`, null);
    const users = await deps.jobs.usersOf('checkpoint', name);
    if (users.length > 0) throw inUse('checkpoint', name, users);
    const dir = await deps.checkpoints.folder(name);
    await deps.checkpoints.remove(name);
    // Every inference process drops the model (it could not answer for it anyway: its cache is keyed by content).
    await deps.predictions.deleted(dir).catch((err: unknown) => request.log.warn({ err }, 'could not evict the deleted checkpoint from inference processes'));
    return reply.status(204).send(null);
  });
};
