import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { JobPlanSchema } from '../../spec/plan';
import { JobSpecSchema } from '../../spec/schema';
import { ErrorBodySchema, JOB_STATUSES, JobSchema } from '../../jobs/types';
import { ErrorResponseSchema } from '../schemas/errors';
import type { AppDeps } from '../services';
import { EVENT_ID_PATTERN, JobEvents } from '../../jobs/job-events';
import { ValidationError } from '../../errors';

export const DEFAULT_PAGE_SIZE = 20;
const DEFAULT_EVENTS_PAGE = 100;
const MAX_EVENTS_PAGE = 1000;
/** SSE: how long one blocking read waits before a keep-alive comment (proxies drop idle streams). */
const SSE_BLOCK_MS = 10_000;
/** After the job ends, how long to wait for its last events (written just after the status). */
const SSE_DRAIN_MS = 500;
const IDEMPOTENCY_KEY_PATTERN = '^[\\x21-\\x7e]{1,255}$';
export const MAX_PAGE_SIZE = 100;

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ErrorResponseSchema]));
const JobEventSchema = Type.Object({
  id: Type.String({ description: 'Ordered event id; pass it as `after` (or Last-Event-ID) to continue after it.' }),
  at: Type.String({ format: 'date-time' }),
  level: Type.Enum(['info', 'warning', 'error']),
  type: Type.Enum(['message', 'metrics']),
  message: Type.String(),
  data: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
});

const PlanResponseSchema = Type.Object({
  valid: Type.Boolean({ description: 'POST /v1/jobs would accept this spec.' }),
  errors: Type.Array(ErrorBodySchema),
  warnings: Type.Array(Type.String()),
  plan: Type.Union([JobPlanSchema, Type.Null()]),
});

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9-]+$' }) }, { additionalProperties: false });

export const jobRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.post(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Submit a job',
        description:
          'Validates the spec (names, regexes, that the dataset and source checkpoint exist, that the restore regex selects weights and the frozen layers exist, that the output name is free) and queues it. Responds 202 with the job and its Location.',
        body: JobSpecSchema,
        response: { 200: JobSchema, 202: JobSchema, ...errors(400, 409, 413, 415, 422) },
      },
    },
    async (request, reply) => {
      const key = request.headers['idempotency-key'];
      if (key !== undefined) {
        if (typeof key !== 'string' || !new RegExp(IDEMPOTENCY_KEY_PATTERN).test(key)) {
          throw new ValidationError('invalid_idempotency_key', 'Idempotency-Key must be 1-255 printable ASCII characters.', null);
        }
        const { job, replayed } = await deps.jobs.submitIdempotent(request.body, key);
        return reply.status(replayed ? 200 : 202).header('location', `/v1/jobs/${job.id}`).send(job);
      }
      const job = await deps.jobs.submit(request.body);
      return reply.status(202).header('location', `/v1/jobs/${job.id}`).send(job);
    },
  );

  app.post(
    '/plans',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Dry-run a job spec: nothing is queued',
        description:
          "Builds the target network exactly as a worker would (without training) and reports its layer table (output shape, params, restored?, frozen?, learning-rate multiplier), the restored / skipped / mismatched weights, total / trainable / frozen parameters, whether feature caching applies, and every error the job would hit, with the codes POST /v1/jobs would answer. A malformed spec is still a 400.",
        body: JobSpecSchema,
        response: { 200: PlanResponseSchema, ...errors(400, 413, 415) },
      },
    },
    async (request) => deps.jobs.plan(request.body),
  );

  app.post(
    '/jobs/:id/cancel',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Cancel a job',
        description:
          'A queued job is cancelled at once (200). A running job is stopped by the worker holding it within one batch (202; poll the job or its events until `cancelled`). It is never retried and writes no checkpoint. Repeating the call is harmless; a finished job answers 409.',
        params: IdParams,
        response: { 200: JobSchema, 202: JobSchema, ...errors(400, 404, 409) },
      },
    },
    async (request, reply) => {
      const { job, pending } = await deps.jobs.cancel(request.params.id);
      return reply.status(pending ? 202 : 200).send(job);
    },
  );

  app.get(
    '/jobs/:id/checkpoints',
    {
      schema: {
        tags: ['jobs'],
        summary: "A job's training checkpoints (written every epoch and on worker shutdown), oldest first",
        description: 'A worker that takes over a job resumes from the newest. The last EPOCH_CHECKPOINTS_KEEP are kept.',
        params: IdParams,
        response: {
          200: Type.Object({
            data: Type.Array(
              Type.Object({
                epoch: Type.Integer({ description: 'The epoch it resumes (1-based).' }),
                batch: Type.Integer({ description: 'Batches of that epoch already done.' }),
                createdAt: Type.String({ format: 'date-time' }),
                metrics: Type.Union([Type.Record(Type.String(), Type.Union([Type.Number(), Type.Null()])), Type.Null()], { description: 'The last finished epoch.' }),
              }),
            ),
          }),
          ...errors(400, 404),
        },
      },
    },
    async (request) => ({ data: await deps.jobs.trainingCheckpoints(request.params.id) }),
  );

  app.get(
    '/jobs/:id/events',
    {
      schema: {
        tags: ['jobs'],
        summary: "A job's events, oldest first (JSON, or Server-Sent Events with Accept: text/event-stream)",
        description:
          'Status changes, per-epoch metrics, warnings, resume notices and errors. With `Accept: text/event-stream` the same events stream live until the job ends; reconnect with `Last-Event-ID` to continue without gaps or duplicates.',
        params: IdParams,
        querystring: Type.Object(
          {
            after: Type.Optional(Type.String({ pattern: EVENT_ID_PATTERN, description: 'Return events after this id.' })),
            limit: Type.Integer({ minimum: 1, maximum: MAX_EVENTS_PAGE, default: DEFAULT_EVENTS_PAGE }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ data: Type.Array(JobEventSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errors(400, 404) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!String(request.headers.accept ?? '').includes('text/event-stream')) {
        const data = await deps.jobs.events(id, request.query);
        return { data, nextCursor: data.length === request.query.limit ? data[data.length - 1].id : null };
      }
      const lastEventId = request.headers['last-event-id'];
      const after = typeof lastEventId === 'string' && new RegExp(EVENT_ID_PATTERN).test(lastEventId) ? lastEventId : (request.query.after ?? '0-0');
      await deps.jobs.get(id); // 404 before switching to a stream
      await streamEvents(deps, id, after, reply);
      return reply;
    },
  );

  app.get(
    '/jobs',
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

  app.get(
    '/jobs/:id',
    { schema: { tags: ['jobs'], summary: 'Get a job', params: IdParams, response: { 200: JobSchema, ...errors(400, 404) } } },
    async (request) => deps.jobs.get(request.params.id),
  );
};

/** Server-Sent Events: every event after `after`, live, until the job has ended and drained. */
async function streamEvents(deps: AppDeps, id: string, after: string, reply: import('fastify').FastifyReply): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.write('retry: 2000\n\n');
  const conn = deps.blockingRedis();
  let open = true;
  res.on('close', () => {
    open = false;
    conn.disconnect();
  });
  const key = deps.eventsKey(id);
  let last = after;
  let endedAt: number | null = null;
  try {
    while (open) {
      const wait = endedAt === null ? SSE_BLOCK_MS : SSE_DRAIN_MS;
      const events = await JobEvents.waitFor(conn, key, last, wait);
      for (const e of events) {
        res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
        last = e.id;
      }
      if (events.length === 0) {
        if (endedAt !== null) break; // ended and nothing more came: done
        res.write(': keep-alive\n\n');
      }
      if (endedAt === null) {
        const job = await deps.jobs.get(id).catch(() => null);
        if (!job || ['succeeded', 'failed', 'cancelled'].includes(job.status)) endedAt = Date.now();
      }
    }
  } catch {
    // The client went away (disconnect aborts the blocking read) or Redis failed: end the stream.
  } finally {
    conn.disconnect();
    if (open) res.end();
  }
}
