import { Type } from 'typebox';
import { NAME_PATTERN } from '../../storage/names';
import { errorResponses } from './errors';

/** `{name}` of a dataset or checkpoint in a path. */
export const NameParams = Type.Object({ name: Type.String({ pattern: NAME_PATTERN }) }, { additionalProperties: false });

/** DELETE /v1/<kind>s/{name}: the same contract for every stored resource. */
export function deleteRouteSchema(kind: 'dataset' | 'checkpoint') {
  return {
    tags: [`${kind}s`],
    summary: `Delete a ${kind}`,
    description: `409 while a queued or running job uses it; 204 otherwise.`,
    params: NameParams,
    response: { 204: Type.Null(), ...errorResponses(400, 404, 409) },
  };
}
