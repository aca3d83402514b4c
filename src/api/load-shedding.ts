import underPressure from '@fastify/under-pressure';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GraftError } from '../errors';

export interface LoadSheddingOptions {
  /** 0 disables each check. */
  maxEventLoopDelayMs: number;
  maxHeapUsedBytes: number;
  maxRssBytes: number;
  retryAfterSeconds: number;
}

/** 503: the process is saturated; the client should come back after Retry-After. */
export class OverloadedError extends GraftError {
  constructor(what: string, retryAfterSeconds: number) {
    super('overloaded', `The API is overloaded (${what}); retry after ${retryAfterSeconds} s.`, { statusCode: 503 });
  }
}

const WHAT: Record<string, (value: number | undefined) => string> = {
  eventLoopDelay: (v) => (Number.isFinite(v) ? `event-loop delay ${Math.round(v ?? 0)} ms` : 'event loop blocked for a whole sample'),
  heapUsedBytes: (v) => `heap in use ${Math.round((v ?? 0) / 1024 ** 2)} MB`,
  rssBytes: (v) => `resident memory ${Math.round((v ?? 0) / 1024 ** 2)} MB`,
};

/**
 * Sheds load instead of hanging: while the event loop lags or memory is over its budget, every
 * request gets an immediate 503 with Retry-After in graft's error shape (@fastify/under-pressure
 * samples once a second). Routes that must answer whatever the load (the liveness probe) opt out
 * with `config: EXEMPT_FROM_LOAD_SHEDDING`.
 */
export async function registerLoadShedding(app: FastifyInstance, opts: LoadSheddingOptions): Promise<void> {
  await app.register(underPressure, {
    maxEventLoopDelay: opts.maxEventLoopDelayMs,
    maxHeapUsedBytes: opts.maxHeapUsedBytes,
    maxRssBytes: opts.maxRssBytes,
    retryAfter: opts.retryAfterSeconds,
    // A rejected promise reaches the app's error handler, which writes graft's error shape.
    pressureHandler: async (_request: FastifyRequest, reply: FastifyReply, type: string, value: number | undefined) => {
      reply.header('retry-after', String(opts.retryAfterSeconds));
      throw new OverloadedError((WHAT[type] ?? (() => type))(value), opts.retryAfterSeconds);
    },
  });
}

/** Route config that lets a route answer while the process sheds load. */
export const EXEMPT_FROM_LOAD_SHEDDING = { pressureHandler: () => undefined };
