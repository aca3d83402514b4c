import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ConflictError, NotFoundError } from '../../errors';
import { ErrorResponseSchema } from '../../jobs/types';
import { createTarGz, createZip } from '../../storage/archive';
import { CheckpointDescriptionSchema } from '../../storage/checkpoints';
import { DatasetDescriptionSchema } from '../../storage/datasets';
import { NAME_PATTERN } from '../../storage/names';
import type { AppDeps } from '../services';

/** Uploads, downloads and deletion of datasets and checkpoints. */
const NameParams = Type.Object({ name: Type.String({ pattern: NAME_PATTERN }) }, { additionalProperties: false });
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ErrorResponseSchema]));

export const uploadRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.post(
    '/datasets',
    {
      schema: {
        tags: ['datasets'],
        summary: 'Upload a dataset (multipart: `name` + one .zip or .tar.gz file)',
        description:
          'The archive holds IDX files (train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz], optional t10k-*) or image folders (train/<class>/*.png|jpg, optional test/<class>/, or <class>/* directly), at its root or inside one top folder. It is streamed to disk, unpacked privately (absolute paths, `..`, links and devices are refused; sizes and entry counts are bounded), every file is validated, and the dataset appears atomically. 201 with its description.',
        consumes: ['multipart/form-data'],
        response: { 201: DatasetDescriptionSchema, ...errors(400, 409, 413, 415, 422) },
      },
    },
    async (request, reply) => reply.status(201).send(await deps.uploads.uploadDataset(request.parts())),
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
        response: { 201: CheckpointDescriptionSchema, ...errors(400, 409, 413, 415, 422) },
      },
    },
    async (request, reply) => reply.status(201).send(await deps.uploads.uploadCheckpoint(request.parts())),
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
      const out = new PassThrough();
      const dir = deps.checkpointDir(name);
      void (zip ? createZip(dir, out) : createTarGz(dir, out)).catch((err: Error) => out.destroy(err));
      return reply
        .header('content-type', zip ? 'application/zip' : 'application/gzip')
        .header('content-disposition', `attachment; filename="${name}.${zip ? 'zip' : 'tar.gz'}"`)
        .send(out);
    },
  );

  for (const kind of ['dataset', 'checkpoint'] as const) {
    app.delete(
      `/${kind}s/:name`,
      {
        schema: {
          tags: [`${kind}s`],
          summary: `Delete a ${kind}`,
          description: `409 while a queued or running job uses it; 204 otherwise.`,
          params: NameParams,
          response: { 204: Type.Null(), ...errors(400, 404, 409) },
        },
      },
      async (request, reply) => {
        const { name } = request.params;
        const dir = kind === 'dataset' ? deps.datasetDir(name) : deps.checkpointDir(name);
        const exists = await fs.stat(dir).then((s) => s.isDirectory(), () => false);
        if (!exists) throw new NotFoundError(`${kind}_not_found`, `There is no ${kind} "${name}".`, null);
        const users = await deps.jobs.usersOf(kind, name);
        if (users.length > 0) {
          throw new ConflictError(`${kind}_in_use`, `The ${kind} "${name}" is used by ${users.length} queued or running job(s) (${users.slice(0, 3).join(', ')}); cancel them or wait.`, null);
        }
        // Rename first (one atomic step: readers see it or not), then delete at leisure.
        const trash = path.join(deps.tmpDir, `deleted-${kind}-${name}-${Date.now()}`);
        await fs.rename(dir, trash);
        await fs.rm(trash, { recursive: true, force: true });
        return reply.status(204).send(null);
      },
    );
  }
};
