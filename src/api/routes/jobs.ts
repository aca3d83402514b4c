import { createReadStream } from 'node:fs';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { JobPlanSchema } from '../../spec/plan';
import { SubmittedSpecSchema } from '../../spec/schema';
import type { FastifyReply } from 'fastify';
import { ErrorBodySchema, JOB_STATUSES, JobSchema, TERMINAL_STATUSES, type Job } from '../../jobs/types';
import { jobJson } from '../../jobs/job-store';
import type { ApiLimits } from '../app';
import { ErrorResponseSchema } from '../schemas/errors';
import type { AppDeps } from '../services';
import { EVENT_ID_PATTERN, QUEUED_EVENT_ID, type JobEvent } from '../../jobs/job-events';
import { GraftError, ValidationError } from '../../errors';
import { TENANT_PATTERN } from '../../auth/principal';
import type { Viewer } from '../../jobs/job-service';

export const DEFAULT_PAGE_SIZE = 20;
const DEFAULT_EVENTS_PAGE = 100;
const MAX_EVENTS_PAGE = 1000;
/** SSE: how often an idle stream gets a keep-alive comment (proxies drop idle streams) and re-checks the job. */
const SSE_KEEP_ALIVE_MS = 10_000;
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

/**
 * A job record as JSON, without the schema-driven serializer: the record is built by JobStore
 * with exactly the schema's fields, and the schema's unions (one branch per job type) make
 * fast-json-stringify validate the whole spec with Ajv to pick a branch, on every submission
 * (a tenth of the API's time under bench:api). The response schema still documents it.
 */
const serializeJob = (job: Job) => jobJson(job);

export const jobRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps; limits: ApiLimits }> = async (app, { deps, limits }) => {
  // Open event streams end when the server closes (clients reconnect with Last-Event-ID), so a
  // shutdown does not wait for them.
  const openStreams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...openStreams]) end();
  });

  app.post(
    '/jobs',
    {
      bodyLimit: limits.jobSpecMaxBytes,
      schema: {
        tags: ['jobs'],
        summary: 'Submit a job',
        description:
          'Validates the spec (names, regexes, that the dataset and source checkpoint exist, that the restore regex selects weights and the frozen layers exist, that the output name is free) and queues it. Responds 202 with the job and its Location.',
        body: SubmittedSpecSchema,
        response: { 200: JobSchema, 202: JobSchema, ...errors(400, 409, 413, 415, 422, 429) },
      },
    },
    async (request, reply) => {
      const key = request.headers['idempotency-key'];
      if (key !== undefined) {
        if (typeof key !== 'string' || !new RegExp(IDEMPOTENCY_KEY_PATTERN).test(key)) {
          throw new ValidationError('invalid_idempotency_key', 'Idempotency-Key must be 1-255 printable ASCII characters.', null);
        }
        const { job, replayed } = await deps.jobs.submitIdempotent(request.body, request.principal, key, request.log);
        return reply.status(replayed ? 200 : 202).header('location', `${app.prefix}/jobs/${job.id}`).type('application/json; charset=utf-8').serializer(serializeJob).send(job);
      }
      const job = await deps.jobs.submit(request.body, request.principal, undefined, request.log);
      return reply.status(202).header('location', `${app.prefix}/jobs/${job.id}`).type('application/json; charset=utf-8').serializer(serializeJob).send(job);
    },
  );

  app.post(
    '/plans',
    {
      // A dry run changes nothing: readers may plan.
      config: { access: 'read' },
      bodyLimit: limits.jobSpecMaxBytes,
      schema: {
        tags: ['jobs'],
        summary: 'Dry-run a job spec: nothing is queued',
        description:
          "Builds the target network exactly as a worker would (without training) and reports its layer table (output shape, params, restored?, frozen?, learning-rate multiplier), the restored / skipped / mismatched weights, total / trainable / frozen parameters, whether feature caching applies, and every error the job would hit, with the codes POST /v1/jobs would answer. A malformed spec is still a 400.",
        body: SubmittedSpecSchema,
        response: { 200: PlanResponseSchema, ...errors(400, 413, 415) },
      },
    },
    async (request) => deps.jobs.plan(request.body, request.principal.tenant),
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
      const { job, pending } = await deps.jobs.cancel(request.params.id, request.principal);
      await deps.audit.record({ actor: request.principal, action: 'job.cancel', target: { kind: 'job', tenant: job.tenant, id: job.id }, details: { status: job.status, pending } });
      return reply.status(pending ? 202 : 200).send(job);
    },
  );

  app.get(
    '/jobs/:id/output',
    {
      schema: {
        tags: ['jobs'],
        summary: "A predict job's predictions, one JSON object per line (JSONL), streamed",
        description: 'Each line: `{index, label?, predicted, probability, top}` for a classifier (`label` is the true class when the split has labels), `{index, output}` otherwise. 409 until the job has succeeded, or for a job that is not a predict job.',
        params: IdParams,
        produces: ['application/x-ndjson'],
        response: { 200: Type.Unsafe<unknown>({ description: 'The JSONL file, streamed.' }), ...errors(400, 404, 409) },
      },
    },
    async (request, reply) => {
      const file = await deps.jobs.outputFile(request.params.id, request.principal);
      return reply.header('content-type', 'application/x-ndjson').header('content-disposition', `attachment; filename="${request.params.id}.jsonl"`).send(createReadStream(file));
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
    async (request) => ({ data: await deps.jobs.trainingCheckpoints(request.params.id, request.principal) }),
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
        response: { 200: Type.Object({ data: Type.Array(JobEventSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errors(400, 404, 429) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!String(request.headers.accept ?? '').includes('text/event-stream')) {
        const data = await deps.jobs.events(id, request.principal, request.query);
        return { data, nextCursor: data.length === request.query.limit ? data[data.length - 1].id : null };
      }
      const lastEventId = request.headers['last-event-id'];
      const after = typeof lastEventId === 'string' && new RegExp(EVENT_ID_PATTERN).test(lastEventId) ? lastEventId : (request.query.after ?? '0-0');
      const job = await deps.jobs.get(id, request.principal); // 404 before switching to a stream
      if (deps.events.subscriberCount >= limits.sseMaxStreams) {
        reply.header('retry-after', String(limits.retryAfterSeconds));
        throw new GraftError(
          'too_many_streams',
          `This API process already serves ${limits.sseMaxStreams} event streams (SSE_MAX_STREAMS); retry after ${limits.retryAfterSeconds} s, or poll GET /v1/jobs/${id}/events?after=<id>.`,
          { statusCode: 429 },
        );
      }
      // From the start, the stream opens with the job's "Job queued." event, made from its record (QUEUED_EVENT_ID).
      const head = after === '0-0' ? (await deps.jobs.journal(job, { limit: 1 })).filter((e) => e.id === QUEUED_EVENT_ID) : [];
      await streamEvents(deps, id, request.principal, after, head, reply, openStreams);
      return reply;
    },
  );

  app.get(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'List jobs, newest first',
        description: "A member or reader sees its tenant's jobs; an admin sees every tenant's, or one tenant's with `tenant`.",
        querystring: Type.Object(
          {
            status: Type.Optional(Type.Enum([...JOB_STATUSES])),
            tenant: Type.Optional(Type.String({ pattern: TENANT_PATTERN, description: "Only this tenant's jobs (admins; for others it can only be their own)." })),
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
      const { jobs, nextCursor } = await deps.jobs.list(request.query, request.principal);
      return { data: jobs, nextCursor };
    },
  );

  app.get(
    '/jobs/:id',
    { schema: { tags: ['jobs'], summary: 'Get a job', params: IdParams, response: { 200: JobSchema, ...errors(400, 404) } } },
    async (request) => deps.jobs.get(request.params.id, request.principal),
  );
};

const sseEvent = (e: JobEvent) => `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;

/**
 * Server-Sent Events: every event after `after`, live, until the job has ended and drained. The
 * events come from the process's one EventHub reader; this stream only writes them, sends
 * keep-alives and watches for the job's end.
 */
function streamEvents(deps: AppDeps, id: string, viewer: Viewer, after: string, head: JobEvent[], reply: FastifyReply, openStreams: Set<() => void>): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.write('retry: 2000\n\n');
  for (const e of head) res.write(sseEvent(e));
  return new Promise<void>((resolve) => {
    let finished = false;
    let ended = false;
    let checking = false;
    let drain: NodeJS.Timeout | undefined;
    const finish = () => {
      if (finished) return;
      finished = true;
      openStreams.delete(finish);
      subscription.close();
      clearInterval(keepAlive);
      clearTimeout(drain);
      res.off('close', finish);
      if (!res.destroyed) res.end();
      resolve();
    };
    // Once the job has ended, its last events are written just after the status: wait for a
    // quiet SSE_DRAIN_MS, then end the stream.
    const drainSoon = () => {
      clearTimeout(drain);
      drain = setTimeout(finish, SSE_DRAIN_MS);
    };
    // Asked again while a look is in flight (events arrived meanwhile): look once more after it.
    let again = false;
    const checkEnded = async () => {
      if (ended || finished) return;
      if (checking) {
        again = true;
        return;
      }
      checking = true;
      do {
        again = false;
        const job = await deps.jobs.get(id, viewer).catch(() => null);
        if (finished || ended) break;
        if (!job || TERMINAL_STATUSES.includes(job.status)) {
          ended = true;
          drainSoon();
        }
      } while (again && !ended && !finished);
      checking = false;
    };
    let subscription: { close(): void };
    try {
      subscription = deps.events.subscribe(deps.eventsKey(id), after, {
        onEvents(events: JobEvent[]) {
          if (finished) return;
          for (const e of events) res.write(sseEvent(e));
          if (ended) drainSoon();
          else void checkEnded();
        },
      });
    } catch {
      // The process is shutting down (the hub is closed): end the stream; the client reconnects.
      res.end();
      resolve();
      return;
    }
    const keepAlive = setInterval(() => {
      res.write(': keep-alive\n\n');
      void checkEnded();
    }, SSE_KEEP_ALIVE_MS);
    // The client went away: forget it at once (no listener, timer or subscription left behind).
    res.on('close', finish);
    openStreams.add(finish);
    void checkEnded();
  });
}
