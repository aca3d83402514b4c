import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * pino `redact` paths of the API logger (issue 11): API keys never reach a log line, whether a
 * request's headers are logged (Fastify's req serializer, or a handler logging headers) or a key
 * travels in an object (a created key's `key`, a bootstrap secret).
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
    '*.apiKey',
    'adminKey',
    'GRAFT_ADMIN_KEY',
    '*.GRAFT_ADMIN_KEY',
    'body.key',
    'res.body.key',
  ],
  censor: '[redacted]',
};

/** The API process's logger (server.ts), with the redaction above; `destination` lets tests read it. */
export function createApiLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, name: 'graft-api', redact: LOG_REDACT }, destination);
}
