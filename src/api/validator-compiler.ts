import type { FastifySchemaCompiler } from 'fastify';
import { makeSchemaCompiler } from '../spec/validation';

/** Fastify's side of the core's validators (src/spec/validation.ts): strict bodies, coerced URLs. */
export function makeValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const compile = makeSchemaCompiler();
  return ({ schema, httpPart }) => compile(schema as object, httpPart) as ReturnType<FastifySchemaCompiler<unknown>>;
}
