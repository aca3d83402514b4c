import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { toValidationError } from './validation';
import { checkSpec } from './check';
import { JobSpecSchema, type JobSpec } from './schema';

let compiled: ReturnType<Ajv['compile']> | null = null;

/**
 * The worker's re-check of a spec with the same schema and rules as the API: a record edited in
 * Redis, or written by an older API version, fails cleanly instead of half-training.
 */
export function validateSpec(value: unknown): JobSpec {
  if (!compiled) {
    const ajv = new Ajv({ coerceTypes: false, useDefaults: false, removeAdditional: false, strict: false });
    addFormats(ajv);
    compiled = ajv.compile(JobSpecSchema);
  }
  if (!compiled(value)) throw toValidationError(compiled.errors ?? [], 'body');
  const spec = value as JobSpec;
  const problems = checkSpec(spec);
  if (problems.length > 0) throw problems[0];
  return spec;
}
