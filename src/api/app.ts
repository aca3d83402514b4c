import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Config } from '../config';
import { LOG_REDACT } from '../auth/redact';
import { GraftError } from '../errors';
import { toValidationError } from '../spec/validation';
import { makeValidatorCompiler } from './validator-compiler';
import type { AppDeps } from './services';
import { registerDashboard } from './dashboard';
import { installMetrics } from './metrics';
import { contractDocument } from './openapi-contract';
import { registerLoadShedding } from './load-shedding';
import { healthRoutes } from './routes/health';
import { v1Routes } from './routes/v1';

export const API_VERSION = '1.0.0';

export type AppConfig = Pick<
  Config,
  | 'BODY_LIMIT_BYTES'
  | 'LOG_LEVEL'
  | 'UPLOAD_MAX_BYTES'
  | 'UPLOAD_MAX_FILES'
  | 'PRESSURE_MAX_EVENT_LOOP_DELAY_MS'
  | 'PRESSURE_MAX_HEAP_USED_MB'
  | 'PRESSURE_MAX_RSS_MB'
  | 'PRESSURE_RETRY_AFTER_SECONDS'
  | 'REQUEST_TIMEOUT_MS'
  | 'CONNECTION_TIMEOUT_MS'
  | 'KEEP_ALIVE_TIMEOUT_MS'
  | 'JOB_SPEC_MAX_BYTES'
  | 'SSE_MAX_STREAMS'
  | 'RATE_LIMIT_PER_MINUTE'
  | 'PREDICT_MAX_INSTANCES'
  | 'PREDICT_MAX_BYTES'
>;

/** Budgets the routes enforce, resolved once from the config. */
export interface ApiLimits {
  /** Route-level body limit of POST /v1/jobs and /v1/plans. */
  jobSpecMaxBytes: number;
  /** Open event streams per process; beyond it 429. */
  sseMaxStreams: number;
  /** Retry-After of a 429 or 503. */
  retryAfterSeconds: number;
  /** Requests per key (or IP) per minute to /v1, across processes; 0 = unlimited. */
  rateLimitPerMinute: number;
  /** POST /v1/checkpoints/{name}/predict: instances and bytes per request (PREDICT_MAX_INSTANCES, PREDICT_MAX_BYTES). */
  predict: { maxInstances: number; maxBytes: number };
}

export interface BuildAppOptions {
  config: AppConfig;
  deps: AppDeps;
  /**
   * The process's one logger (server.ts): Fastify logs through it and every request gets a child
   * carrying its id. Without it the app logs at LOG_LEVEL on its own; `false` silences it (tests).
   */
  logger?: FastifyBaseLogger | false;
}

/**
 * Builds the API (fastify/demo style: a factory, no listening here; only server.ts listens).
 * Everything with side effects arrives in `deps`, so tests build it on a private queue.
 */
export async function buildApp(opts: BuildAppOptions): Promise<FastifyInstance> {
  const { config } = opts;
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: opts.logger === false ? false : { level: config.LOG_LEVEL, redact: LOG_REDACT } }),
    bodyLimit: config.BODY_LIMIT_BYTES,
    // Slow or idle clients cannot hold a connection for ever (slowloris); see README "Configuration".
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    connectionTimeout: config.CONNECTION_TIMEOUT_MS,
    keepAliveTimeout: config.KEEP_ALIVE_TIMEOUT_MS,
    ajv: undefined,
    // Validation errors are mapped to graft's shape in the error handler below.
    schemaErrorFormatter: (errors, dataVar) => Object.assign(toValidationError(errors as never, dataVar), { validation: errors }),
    genReqId: () => crypto.randomUUID(),
    // One access-log line per request (below), not Fastify's two ("incoming" + "completed").
    logController: new LogController({ disableRequestLogging: true }),
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.info({ method: request.method, url: request.url, statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'request completed');
  });
  app.setValidatorCompiler(makeValidatorCompiler());
  await registerLoadShedding(app, {
    maxEventLoopDelayMs: config.PRESSURE_MAX_EVENT_LOOP_DELAY_MS,
    maxHeapUsedBytes: config.PRESSURE_MAX_HEAP_USED_MB * 1024 ** 2,
    maxRssBytes: config.PRESSURE_MAX_RSS_MB * 1024 ** 2,
    retryAfterSeconds: config.PRESSURE_RETRY_AFTER_SECONDS,
  });
  // The API speaks JSON only; anything else is a 415, not a confusing type error.
  app.removeContentTypeParser('text/plain');

  await app.register(swagger, {
    // operationIds, shared $ref components, servers, security: see openapi-contract.ts
    transformObject: (doc) => contractDocument(('openapiObject' in doc ? doc.openapiObject : doc.swaggerObject) as never) as never,
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'graft',
        version: API_VERSION,
        description: 'Transfer-learning jobs over REST: restore a checkpoint\'s weights by regex, freeze layers, attach a new head, train on your dataset, get a new checkpoint.',
      },
      tags: [
        { name: 'jobs', description: 'Submit and monitor training jobs' },
        { name: 'checkpoints', description: 'Models on the volume' },
        { name: 'datasets', description: 'Datasets on the volume' },
        { name: 'keys', description: 'API keys and the audit log' },
        { name: 'health', description: 'Liveness and readiness' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  // Uploads stream part by part to disk; a file over the limit aborts the request with 413.
  await app.register(multipart, { limits: { fileSize: config.UPLOAD_MAX_BYTES, files: config.UPLOAD_MAX_FILES, fields: 16, fieldSize: 1024 } });

  app.setErrorHandler((err: FastifyError | GraftError, request, reply) => {
    if (err instanceof GraftError) {
      // Shedding load (503) and refusing streams or uploads (429) are the process protecting itself, not failures.
      if (err.statusCode === 503 || err.statusCode === 429) request.log.warn({ code: err.code }, err.message);
      else if (err.statusCode >= 500) request.log.error({ err }, 'request failed');
      if (err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds));
      return reply.status(err.statusCode).send({ error: err.toJSON() });
    }
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      request.log.error({ err }, 'unexpected error');
      return reply.status(500).send({ error: { code: 'internal_error', message: 'Something went wrong on our side; the request id is ' + request.id + '.', param: null } });
    }
    return reply.status(status).send({ error: { code: fastifyCode(err), message: err.message, param: null } });
  });

  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: { code: 'route_not_found', message: `No route ${request.method} ${request.url.split('?')[0]}.`, param: null } }),
  );

  installMetrics(app, () => opts.deps.metrics);
  await registerDashboard(app);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.register(healthRoutes, { deps: opts.deps });
  const limits: ApiLimits = { jobSpecMaxBytes: config.JOB_SPEC_MAX_BYTES, sseMaxStreams: config.SSE_MAX_STREAMS, retryAfterSeconds: config.PRESSURE_RETRY_AFTER_SECONDS, rateLimitPerMinute: config.RATE_LIMIT_PER_MINUTE, predict: { maxInstances: config.PREDICT_MAX_INSTANCES, maxBytes: config.PREDICT_MAX_BYTES } };
  await app.register(v1Routes, { deps: opts.deps, limits, prefix: '/v1' });
  return app;
}

/** Fastify's own client errors (bad JSON, wrong content type, body too large) in graft's vocabulary. */
function fastifyCode(err: FastifyError): string {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'unsupported_media_type';
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'body_too_large';
    case 'FST_REQ_FILE_TOO_LARGE':
    case 'FST_FILES_LIMIT':
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return 'upload_too_large';
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return 'unsupported_media_type';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return 'invalid_json';
    default:
      return err.statusCode === 413 ? 'body_too_large' : err.statusCode === 415 ? 'unsupported_media_type' : err.statusCode === 404 ? 'not_found' : 'bad_request';
  }
}
