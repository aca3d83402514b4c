import path from 'node:path';
import { ValidationError } from '../errors';

/** Dataset and checkpoint names: safe as one path segment on every filesystem we care about. */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
const NAME_RE = new RegExp(NAME_PATTERN);

/**
 * A reference to a dataset or checkpoint in a spec: `<name>` (the caller's tenant) or
 * `<namespace>/<name>`, where only `public` (and the caller's own tenant) resolve; any other
 * namespace is reported exactly like a missing name (layout.ts, parseRef).
 */
export const REF_PATTERN = `^(?:[a-z0-9][a-z0-9-]{0,62}/)?${NAME_PATTERN.slice(1)}`;

export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME_RE.test(name) && name !== '.' && name !== '..';
}

export function assertValidName(name: unknown, param: string): string {
  if (!isValidName(name)) {
    throw new ValidationError(
      'invalid_name',
      `${JSON.stringify(name)} is not a valid name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.`,
      param,
    );
  }
  return name;
}

/**
 * Names a tenant may not give its own datasets and checkpoints: `/v1/checkpoints/public/...` and
 * `/v1/datasets/public/...` are the shared namespace's routes, so an object of one's own named
 * `public` has its archive path (`/v1/checkpoints/public/archive`) taken by them. Existing objects
 * keep working as far as the routes allow; new ones are refused when created.
 */
export const RESERVED_NAMES: ReadonlySet<string> = new Set(['public']);

/** The ValidationError for a reserved name, or null. */
export function reservedNameError(name: string, param: string): ValidationError | null {
  return RESERVED_NAMES.has(name)
    ? new ValidationError('reserved_name', `"${name}" is reserved: /v1/checkpoints/${name}/... and /v1/datasets/${name}/... are the shared namespace. Pick another name.`, param)
    : null;
}

/** A valid name for a new dataset or checkpoint of one's own (see RESERVED_NAMES). */
export function assertCreatableName(name: unknown, param: string): string {
  const valid = assertValidName(name, param);
  const reserved = reservedNameError(valid, param);
  if (reserved) throw reserved;
  return valid;
}

/**
 * Resolves `parts` under `root` and refuses anything that would land outside it. Names are
 * validated before they get here; this is the second line of defence.
 */
export function resolveInside(root: string, ...parts: string[]): string {
  const base = path.resolve(root);
  const target = path.resolve(base, ...parts);
  if (target !== base && !target.startsWith(base + path.sep)) {
    throw new ValidationError('invalid_path', 'The path resolves outside the data directory.');
  }
  return target;
}

/**
 * `dir/name` for a name that isValidName accepts, under a `dir` that is already absolute and
 * normalised (DataLayout's folders). Such a name is one path segment, never `.` or `..`, so the
 * join is the resolved path: resolveInside's two path.resolve calls (several per submission) buy
 * nothing here. Anything else still goes through resolveInside.
 */
export function childDir(dir: string, name: string): string {
  return isValidName(name) ? dir + path.sep + name : resolveInside(dir, name);
}
