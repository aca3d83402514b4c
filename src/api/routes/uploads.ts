import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ValidationError } from '../../errors';
import { assertMayWrite } from '../../tenants/access';
import { CheckpointDescriptionSchema } from '../schemas/checkpoints';
import { DatasetDescriptionSchema } from '../schemas/datasets';
import { errorResponses } from '../schemas/errors';
import type { AppDeps } from '../services';

/**
 * Uploads of datasets and checkpoints (multipart), into the caller's tenant, under its quotas
 * (uploads per minute, storage bytes). Download and delete live with each resource.
 */
export const uploadRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  /**
   * Runs `upload` in an upload slot: 429 (with Retry-After), 413 or 507 before the body is read.
   * A client that goes away mid-upload aborts it, so its slot and staging folder are freed at once.
   */
  const admitted = async <T>(request: FastifyRequest, reply: FastifyReply, upload: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const declared = Number(request.headers['content-length']);
    const { principal } = request;
    assertMayWrite(principal, principal.tenant);
    // The tenant's quotas first (uploads per minute: 429; storage: 403), then this process's
    // budget. A refusal carries its Retry-After (the app's error handler sends it).
    await deps.storageQuota.admitUpload(principal.tenant, Number.isFinite(declared) ? declared : null);
    const ticket = await deps.uploads.admit(Number.isFinite(declared) ? declared : null);
    const abort = new AbortController();
    const onClose = () => {
      if (!request.raw.complete) abort.abort(new ValidationError('upload_aborted', 'The client closed the connection before the upload was complete.'));
    };
    request.raw.on('close', onClose);
    try {
      return await upload(abort.signal);
    } finally {
      request.raw.off('close', onClose);
      ticket.release();
    }
  };

  app.post(
    '/datasets',
    {
      schema: {
        tags: ['datasets'],
        summary: 'Upload a dataset (multipart: `name` + one .zip or .tar.gz file)',
        description:
          'The archive holds IDX files (train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz], optional t10k-*) or image folders (train/<class>/*.png|jpg, optional test/<class>/, or <class>/* directly), at its root or inside one top folder. It is streamed to disk, unpacked privately (absolute paths, `..`, links and devices are refused; sizes and entry counts are bounded), every file is validated, and the dataset appears atomically. 201 with its description.',
        consumes: ['multipart/form-data'],
        response: { 201: DatasetDescriptionSchema, ...errorResponses(400, 403, 409, 413, 415, 422, 429, 507) },
      },
    },
    async (request, reply) => {
      const { tenant } = request.principal;
      const created = await admitted(request, reply, (signal) => deps.uploads.uploadDataset(tenant, request.parts(), signal));
      await deps.audit.record({ actor: request.principal, action: 'dataset.create', target: { kind: 'dataset', tenant, id: created.name } });
      return reply.status(201).send(created);
    },
  );

  app.post(
    '/checkpoints',
    {
      schema: {
        tags: ['checkpoints'],
        summary: 'Upload a checkpoint (multipart: `name` + model.json and its weight files, or one .zip / .tar.gz)',
        description:
          'A TensorFlow.js layers-format model. It is verified by loading its topology and checking every weight against the bytes its files hold (and the hashes of manifest.json when present), then stored with a manifest. An archive from GET /v1/checkpoints/{name}/archive is accepted back unchanged. 201 with the layer table.',
        consumes: ['multipart/form-data'],
        response: { 201: CheckpointDescriptionSchema, ...errorResponses(400, 403, 409, 413, 415, 422, 429, 507) },
      },
    },
    async (request, reply) => {
      const { tenant } = request.principal;
      const created = await admitted(request, reply, (signal) => deps.uploads.uploadCheckpoint(tenant, request.parts(), signal));
      await deps.audit.record({ actor: request.principal, action: 'checkpoint.create', target: { kind: 'checkpoint', tenant, id: created.name } });
      return reply.status(201).send(created);
    },
  );
};
