import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { ValidationError } from '../errors';
import { NAME_PATTERN, REF_PATTERN } from '../storage/names';

/**
 * Two validators: request bodies (and job specs the worker re-checks) are validated strictly (no
 * type coercion, no defaults, no silently dropped fields: `"epochs": "3"` is an error, not 3),
 * while query strings and path parameters are coerced, since everything in a URL is a string.
 * Framework-free, so the worker shares it; src/api/validator-compiler.ts adapts it to Fastify.
 */
function makeAjv(coerce: boolean): Ajv {
  const ajv = new Ajv({
    coerceTypes: coerce ? 'array' : false,
    useDefaults: coerce,
    removeAdditional: false,
    allErrors: false,
    strict: false,
  });
  addFormats(ajv);
  return ajv;
}

/** Compiles a schema for one part of a request ('body', 'querystring', 'params', 'headers'). */
export type SchemaCompiler = (schema: object, part: string | undefined) => ValidateFunction;

/** A compiler with its own pair of Ajv instances (compiled schemas are cached per instance). */
export function makeSchemaCompiler(): SchemaCompiler {
  const strict = makeAjv(false);
  const lenient = makeAjv(true);
  return (schema, part) => (part === 'body' ? strict : lenient).compile(schema);
}

const describePath = (pointer: string) => (pointer === '' ? 'The request body' : `\`${pointer.slice(1).replace(/\//g, '.')}\``);

/** Fastify's names for the parts of a request, as a user would call them. */
const PART_NAMES: Record<string, string> = { querystring: 'Query parameter', params: 'Path parameter', headers: 'Header' };

/** Turns ajv's first complaint into graft's error shape with a JSON-pointer `param`. */
export function toValidationError(errors: ErrorObject[], part: string): ValidationError {
  const first = errors[0];
  // For a union (anyOf), ajv lists each branch's complaint and then the union's; the union's
  // own message is the useful one when the failing value sits at the union itself.
  const union = errors.find((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const chosen = union && first.instancePath === union.instancePath ? union : first;
  const at = chosen.instancePath;
  const where = part === 'body' ? describePath(at) : `${PART_NAMES[part] ?? 'Parameter'} ${describePath(at)}`;
  const p = chosen.params as Record<string, unknown>;

  switch (chosen.keyword) {
    case 'required': {
      const field = String(p.missingProperty);
      return new ValidationError('missing_field', `${where === 'The request body' ? 'The request body' : where} is missing the required field \`${field}\`.`, `${at}/${field}`);
    }
    case 'additionalProperties': {
      const field = String(p.additionalProperty);
      return new ValidationError('unknown_field', `Unknown field \`${field}\` in ${where === 'The request body' ? 'the request body' : where}; check its spelling against the API reference.`, `${at}/${field}`);
    }
    case 'type':
      return new ValidationError('invalid_type', `${where} must be of type ${String(p.type)}.`, at || null);
    case 'enum':
      return new ValidationError('invalid_value', `${where} must be one of: ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}.`, at || null);
    case 'pattern':
      if (p.pattern === NAME_PATTERN) {
        return new ValidationError('invalid_name', `${where} must be a name of 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.`, at);
      }
      if (p.pattern === REF_PATTERN) {
        return new ValidationError('invalid_name', `${where} must be a name of 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, optionally prefixed by \`public/\`.`, at);
      }
      return new ValidationError('invalid_value', `${where} must match ${String(p.pattern)}.`, at);
    case 'anyOf':
    case 'oneOf':
      return new ValidationError('invalid_value', `${where} does not have any of the accepted forms; see the API reference.`, at || null);
    default:
      return new ValidationError('invalid_value', `${where} ${chosen.message ?? 'is invalid'}.`, at || null);
  }
}
