import { ConflictError } from '../../errors';

/** 409 for deleting a dataset or checkpoint that queued or running jobs still need. */
export function inUse(kind: 'dataset' | 'checkpoint', name: string, users: string[]): ConflictError {
  return new ConflictError(`${kind}_in_use`, `The ${kind} "${name}" is used by ${users.length} queued or running job(s) (${users.slice(0, 3).join(', ')}); cancel them or wait.`, null);
}
