import safeRegex from 'safe-regex2';
import { ValidationError } from '../errors';
import { MAX_REGEX_LENGTH } from './schema';

/**
 * User regexes run inside the worker against names from user-supplied checkpoints, so they are
 * bounded: a length cap (schema), no nested quantifiers (safe-regex2, fastify's own guard), and
 * they only ever see short names (layer and weight names).
 */
const REPETITION_LIMIT = 25;

export function compileUserRegex(source: string, param: string): RegExp {
  if (source.length > MAX_REGEX_LENGTH) {
    throw new ValidationError('invalid_regex', `The regular expression is longer than ${MAX_REGEX_LENGTH} characters.`, param);
  }
  let re: RegExp;
  try {
    re = new RegExp(source);
  } catch (err) {
    throw new ValidationError('invalid_regex', `${JSON.stringify(source)} is not a valid regular expression: ${(err as Error).message}.`, param);
  }
  if (!safeRegex(re, { limit: REPETITION_LIMIT })) {
    throw new ValidationError(
      'unsafe_regex',
      `${JSON.stringify(source)} could take exponential time (nested or too many repetitions); simplify it.`,
      param,
    );
  }
  return re;
}
