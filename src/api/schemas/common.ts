import { Type } from 'typebox';
import { NAME_PATTERN } from '../../storage/names';
import { errorResponses } from './errors';

/** `{name}` of a dataset or checkpoint in a path. */
export const NameParams = Type.Object({ name: Type.String({ pattern: NAME_PATTERN }) }, { additionalProperties: false });

/** Which namespace a list shows: your tenant's objects (default) or the shared `public` ones. */
export const NamespaceQuery = Type.Object(
  { namespace: Type.Optional(Type.Enum(['own', 'public'], { default: 'own', description: '`own`: your tenant\'s objects; `public`: the shared read-only namespace.' })) },
  { additionalProperties: false },
);

/** POST /v1/<kind>s/{name}/publish */
export const PublishBody = Type.Object(
  { as: Type.Optional(Type.String({ pattern: NAME_PATTERN, description: 'Name in the public namespace (default: the same name).' })) },
  { additionalProperties: false },
);

/** DELETE /v1/<kind>s/{name}: the same contract for every stored resource. */
export function deleteRouteSchema(kind: 'dataset' | 'checkpoint', namespace: 'own' | 'public' = 'own') {
  return {
    tags: [`${kind}s`],
    summary: namespace === 'own' ? `Delete a ${kind}` : `Delete a public ${kind} (admin)`,
    description: `409 while a queued or running job uses it; 204 otherwise.${namespace === 'public' ? ' 403 unless the caller is an admin.' : ''}`,
    params: NameParams,
    response: { 204: Type.Null(), ...errorResponses(400, 403, 404, 409) },
  };
}

/** A publish request may come without a body (publish under the same name): validated as `{}`. */
export async function emptyBodyAsObject(request: { body: unknown }): Promise<void> {
  request.body ??= {};
}

export function publishRouteSchema(kind: 'dataset' | 'checkpoint', response: unknown) {
  return {
    tags: [`${kind}s`],
    summary: `Publish a ${kind} to the public namespace (admin)`,
    description: `Copies your tenant's ${kind} \`{name}\` to \`public/<as>\` atomically; every tenant can then read it (\`public/<as>\` in a spec) and only an admin can delete it. 409 if the public name is taken.`,
    params: NameParams,
    body: PublishBody,
    response: { 201: response, ...errorResponses(400, 403, 404, 409, 422) },
  };
}
