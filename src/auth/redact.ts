import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * pino `redact` paths of the API logger (issue 11): API keys never reach a log line, whether a
 * request's headers are logged (Fastify's req serializer, or a handler logging headers) or a key
 * travels in an object (a created key's `key`, a bootstrap secret, the config or environment).
 * No path starts with a wildcard: with one, pino runs its redactor over every property of every
 * line and of every request's child logger, which was a third of the logging cost of a request
 * (bench:api). The secrets' holders are named instead.
 */
export const LOG_REDACT = {
  paths: [
    'req.headers.authorization',
    'request.headers.authorization',
    'headers.authorization',
    'authorization',
    'req.headers.cookie',
    'headers.cookie',
    'key',
    'apiKey',
    'body.apiKey',
    'res.body.apiKey',
    'adminKey',
    'GRAFT_ADMIN_KEY',
    'config.GRAFT_ADMIN_KEY',
    'env.GRAFT_ADMIN_KEY',
    'body.key',
    'res.body.key',
  ],
  censor: '[redacted]',
};

/** The API process's logger (server.ts), with the redaction above; `destination` lets tests read it. */
export function createApiLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, name: 'graft-api', redact: LOG_REDACT }, destination);
}
