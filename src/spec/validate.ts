import type { ValidateFunction } from 'ajv';
import { checkSpec } from './check';
import { isUseJob, SubmittedSpecSchema, type AnyJobSpec } from './schema';
import { makeSchemaCompiler, toValidationError } from './validation';

let compiled: ValidateFunction | null = null;

/**
 * The worker's re-check of a spec with the same schema, validator settings and rules as the
 * API's request bodies: a record edited in Redis, or written by an older API version, fails
 * cleanly instead of half-training.
 */
export function validateSpec(value: unknown): AnyJobSpec {
  compiled ??= makeSchemaCompiler()(SubmittedSpecSchema, 'body');
  if (!compiled(value)) throw toValidationError(compiled.errors ?? [], 'body');
  const spec = value as AnyJobSpec;
  if (isUseJob(spec)) return spec;
  const problems = checkSpec(spec);
  if (problems.length > 0) throw problems[0];
  return spec;
}
