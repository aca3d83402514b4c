import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import { JobSpecSchema, type JobSpec } from '../spec/schema';
import { ErrorResponseSchema, JOB_STATUSES, JobSchema, type JobStatus } from '../jobs/types';
import type { AppDeps } from '../services';

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ErrorResponseSchema]));
const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9-]+$' }) }, { additionalProperties: false });

export const jobRoutes: FastifyPluginAsync<{ deps: AppDeps }> = async (app, { deps }) => {
  app.post<{ Body: JobSpec }>(
    '/v1/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Submit a job',
        description:
          'Validates the spec (names, regexes, that the dataset and source checkpoint exist, that the restore regex selects weights and the frozen layers exist, that the output name is free) and queues it. Responds 202 with the job and its Location.',
        body: JobSpecSchema,
        response: { 202: JobSchema, ...errors(400, 409, 413, 415, 422) },
      },
    },
    async (request, reply) => {
      const job = await deps.jobs.submit(request.body);
      return reply.status(202).header('location', `/v1/jobs/${job.id}`).send(job);
    },
  );

  app.get<{ Querystring: { status?: JobStatus; limit: number; cursor?: string } }>(
    '/v1/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'List jobs, newest first',
        querystring: Type.Object(
          {
            status: Type.Optional(Type.Enum([...JOB_STATUSES])),
            limit: Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE }),
            cursor: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: '`nextCursor` of the previous page.' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ data: Type.Array(JobSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
          ...errors(400),
        },
      },
    },
    async (request) => {
      const { jobs, nextCursor } = await deps.jobs.list(request.query);
      return { data: jobs, nextCursor };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/jobs/:id',
    { schema: { tags: ['jobs'], summary: 'Get a job', params: IdParams, response: { 200: JobSchema, ...errors(400, 404) } } },
    async (request) => deps.jobs.get(request.params.id),
  );
};
