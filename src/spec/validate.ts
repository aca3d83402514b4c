import type { ValidateFunction } from 'ajv';
import { checkSpec } from './check';
import { JobSpecSchema, type JobSpec } from './schema';
import { makeSchemaCompiler, toValidationError } from './validation';

let compiled: ValidateFunction | null = null;

/**
 * The worker's re-check of a spec with the same schema, validator settings and rules as the
 * API's request bodies: a record edited in Redis, or written by an older API version, fails
 * cleanly instead of half-training.
 */
export function validateSpec(value: unknown): JobSpec {
  compiled ??= makeSchemaCompiler()(JobSpecSchema, 'body');
  if (!compiled(value)) throw toValidationError(compiled.errors ?? [], 'body');
  const spec = value as JobSpec;
  const problems = checkSpec(spec);
  if (problems.length > 0) throw problems[0];
  return spec;
}
