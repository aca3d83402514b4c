import { PassThrough } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { PUBLIC_TENANT } from '../../auth/principal';
import { createTarGz, createZip } from '../../storage/archive';
import { checkpointNotFound } from '../../storage/checkpoints';
import { assertAdmin, assertMayWrite } from '../../tenants/access';
import { CheckpointDescriptionSchema, CheckpointSummarySchema } from '../schemas/checkpoints';
import { NameParams, NamespaceQuery, deleteRouteSchema, emptyBodyAsObject, publishRouteSchema } from '../schemas/common';
import { ErrorResponseSchema } from '../schemas/errors';
import type { AppDeps } from '../services';
import { inUse } from './in-use';

/**
 * Checkpoints: list, describe, download, delete, publish (uploads are in uploads.ts). Everything
 * acts in the caller's tenant (`request.principal.tenant`): another tenant's checkpoint is looked
 * up in the caller's own namespace, where it does not exist, so the answer is the very 404 of a
 * missing name. The shared namespace has its own paths, /v1/checkpoints/public/{name}: readable by
 * everyone, changed only by admins.
 */
export const checkpointRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  const catalogOf = (tenant: string) => deps.checkpoints.forTenant(tenant);

  app.get(
    '/checkpoints',
    {
      schema: {
        tags: ['checkpoints'],
        summary: 'List checkpoints (yours, or the public ones with ?namespace=public)',
        querystring: NamespaceQuery,
        response: { 200: Type.Object({ data: Type.Array(CheckpointSummarySchema) }) },
      },
    },
    async (request) => ({ data: await catalogOf(request.query.namespace === 'public' ? PUBLIC_TENANT : request.principal.tenant).list() }),
  );

  // The per-checkpoint routes, once for the caller's namespace and once for the public one.
  for (const ns of ['own', 'public'] as const) {
    const prefix = ns === 'own' ? '/checkpoints' : '/checkpoints/public';
    const tenantOf = (request: FastifyRequest) => (ns === 'own' ? request.principal.tenant : PUBLIC_TENANT);
    const label = ns === 'own' ? '' : 'public ';

    app.get(
      `${prefix}/:name`,
      {
        schema: {
          tags: ['checkpoints'],
          summary: `Describe a ${label}checkpoint: layers (class, output shape, params, weights) and its manifest`,
          params: NameParams,
          response: { 200: CheckpointDescriptionSchema, 400: ErrorResponseSchema, 404: ErrorResponseSchema, 422: ErrorResponseSchema },
        },
      },
      async (request) => catalogOf(tenantOf(request)).describe(request.params.name),
    );

    app.get(
      `${prefix}/:name/archive`,
      {
        schema: {
          tags: ['checkpoints'],
          summary: `Download a ${label}checkpoint as one .tar.gz (or .zip with Accept: application/zip)`,
          params: NameParams,
          produces: ['application/gzip', 'application/zip'],
          response: { 200: Type.Unsafe<unknown>({ description: 'The checkpoint archive, streamed.' }), 400: ErrorResponseSchema, 404: ErrorResponseSchema },
        },
      },
      async (request, reply) => sendArchive(catalogOf(tenantOf(request)), request.params.name, request, reply),
    );

    app.delete(`${prefix}/:name`, { schema: deleteRouteSchema('checkpoint', ns) }, async (request, reply) => {
      const { name } = request.params;
      const tenant = tenantOf(request);
      assertMayWrite(request.principal, tenant);
      const catalog = catalogOf(tenant);
      if (!(await catalog.exists(name))) throw checkpointNotFound(name);
      const users = await deps.jobs.usersOf('checkpoint', name, tenant);
      if (users.length > 0) throw inUse('checkpoint', name, users);
      const dir = await catalog.folder(name);
      await catalog.remove(name);
      await deps.audit.record({ actor: request.principal, action: 'checkpoint.delete', target: { kind: 'checkpoint', tenant, id: name } });
      // Every inference process drops the model (it could not answer for it anyway: its cache is keyed by content).
      await deps.predictions.deleted(dir).catch((err: unknown) => request.log.warn({ err }, 'could not evict the deleted checkpoint from inference processes'));
      return reply.status(204).send(null);
    });
  }

  app.post(
    '/checkpoints/:name/publish',
    { config: { access: 'admin' }, preValidation: emptyBodyAsObject, schema: publishRouteSchema('checkpoint', CheckpointDescriptionSchema) },
    async (request, reply) => {
      assertAdmin(request.principal);
      const { name } = request.params;
      const as = request.body.as ?? name;
      const from = request.principal.tenant;
      const published = await deps.publisher.checkpoint(from, name, as);
      await deps.audit.record({ actor: request.principal, action: 'checkpoint.publish', target: { kind: 'checkpoint', tenant: PUBLIC_TENANT, id: as }, details: { from: { tenant: from, name } } });
      return reply.status(201).send(published);
    },
  );
};

type Catalog = ReturnType<AppDeps['checkpoints']['forTenant']>;

async function sendArchive(catalog: Catalog, name: string, request: FastifyRequest, reply: FastifyReply) {
  // folder() throws the same checkpoint_not_found as describe for a name the namespace lacks.
  const dir = await catalog.folder(name);
  const zip = String(request.headers.accept ?? '').includes('application/zip');
  const out = new PassThrough();
  void (zip ? createZip(dir, out) : createTarGz(dir, out)).catch((err: Error) => out.destroy(err));
  return reply
    .header('content-type', zip ? 'application/zip' : 'application/gzip')
    .header('content-disposition', `attachment; filename="${name}.${zip ? 'zip' : 'tar.gz'}"`)
    .send(out);
}
