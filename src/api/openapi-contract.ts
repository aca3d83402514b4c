/**
 * Turns the document @fastify/swagger generates from the route schemas into a client contract
 * (lint clean with redocly's recommended rules, see .ci/run):
 *
 * - every operation has a stable operationId from OPERATION_IDS below (generated clients name their
 *   methods after them, so they must not change when a summary or path is edited);
 * - the big shared schemas (the job spec, the job, the error, ...) are `$ref` components instead of
 *   being inlined in every route: each is taken once from the route that defines it and every
 *   identical copy is replaced by a reference;
 * - servers, security (every /v1 operation needs the bearer API key, `bearerAuth`; health, docs and
 *   the document itself say `security: []`),
 *   a licence, and a 4XX answer on operations that declare none (any request can get graft's
 *   error shape, e.g. 404 route_not_found or 415).
 *
 * It runs in `transformObject`, so the routes stay plain TypeBox and the drift test still compares
 * the committed document with what the code generates.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** `METHOD /path` → operationId. A new route needs an entry (test/api/openapi-contract.test.ts). */
export const OPERATION_IDS: Record<string, string> = {
  'GET /healthz': 'getHealth',
  'GET /readyz': 'getReadiness',
  'POST /v1/jobs': 'submitJob',
  'GET /v1/jobs': 'listJobs',
  'GET /v1/jobs/{id}': 'getJob',
  'POST /v1/jobs/{id}/cancel': 'cancelJob',
  'GET /v1/jobs/{id}/events': 'listJobEvents',
  'GET /v1/jobs/{id}/checkpoints': 'listJobTrainingCheckpoints',
  'GET /v1/jobs/{id}/output': 'getJobOutput',
  'POST /v1/plans': 'planJob',
  'GET /v1/checkpoints': 'listCheckpoints',
  'POST /v1/checkpoints': 'uploadCheckpoint',
  'GET /v1/checkpoints/{name}': 'getCheckpoint',
  'DELETE /v1/checkpoints/{name}': 'deleteCheckpoint',
  'GET /v1/checkpoints/{name}/archive': 'downloadCheckpointArchive',
  'POST /v1/checkpoints/{name}/predict': 'predictWithCheckpoint',
  'POST /v1/checkpoints/public/{name}/predict': 'predictWithPublicCheckpoint',
  'GET /v1/datasets': 'listDatasets',
  'POST /v1/datasets': 'uploadDataset',
  'GET /v1/datasets/{name}': 'getDataset',
  'DELETE /v1/datasets/{name}': 'deleteDataset',
  'POST /v1/keys': 'createApiKey',
  'GET /v1/keys': 'listApiKeys',
  'DELETE /v1/keys/{id}': 'revokeApiKey',
  'GET /v1/audit': 'listAuditEntries',
  'GET /v1/checkpoints/public/{name}': 'getPublicCheckpoint',
  'DELETE /v1/checkpoints/public/{name}': 'deletePublicCheckpoint',
  'GET /v1/checkpoints/public/{name}/archive': 'downloadPublicCheckpointArchive',
  'POST /v1/checkpoints/{name}/publish': 'publishCheckpoint',
  'GET /v1/datasets/public/{name}': 'getPublicDataset',
  'DELETE /v1/datasets/public/{name}': 'deletePublicDataset',
  'POST /v1/datasets/{name}/publish': 'publishDataset',
  'GET /v1/tenants/{tenant}': 'getTenant',
  'PUT /v1/tenants/{tenant}/quotas': 'setTenantQuotas',
};

/** The security scheme every /v1 operation requires (issue 11). */
export const BEARER_SCHEME = 'bearerAuth';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** Where each shared component is defined (path, method, then the way into the operation). */
const COMPONENTS: { name: string; from: [string, string, ...string[]] }[] = [
  { name: 'ErrorResponse', from: ['/v1/jobs/{id}', 'get', 'responses', '404', 'content', 'application/json', 'schema'] },
  { name: 'JobSpec', from: ['/v1/jobs', 'post', 'requestBody', 'content', 'application/json', 'schema', 'else'] },
  { name: 'UseJobSpec', from: ['/v1/jobs', 'post', 'requestBody', 'content', 'application/json', 'schema', 'then'] },
  { name: 'Job', from: ['/v1/jobs/{id}', 'get', 'responses', '200', 'content', 'application/json', 'schema'] },
  { name: 'JobEvent', from: ['/v1/jobs/{id}/events', 'get', 'responses', '200', 'content', 'application/json', 'schema', 'properties', 'data', 'items'] },
  { name: 'PlanResult', from: ['/v1/plans', 'post', 'responses', '200', 'content', 'application/json', 'schema'] },
  { name: 'CheckpointDescription', from: ['/v1/checkpoints/{name}', 'get', 'responses', '200', 'content', 'application/json', 'schema'] },
  { name: 'DatasetDescription', from: ['/v1/datasets/{name}', 'get', 'responses', '200', 'content', 'application/json', 'schema'] },
];

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** JSON with sorted keys: two schemas are the same component when their canonical texts match. */
function canonical(v: Json): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isObject(v)) return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

function dig(root: JsonObject, keys: string[]): Json | undefined {
  let node: Json | undefined = root;
  for (const k of keys) node = isObject(node) ? node[k] : undefined;
  return node;
}

/** Replaces, below `node` (not `node` itself), every subtree whose text is a component's. */
function replaceCopies(node: Json, byText: Map<string, string>): void {
  if (Array.isArray(node)) {
    node.forEach((child, i) => {
      const name = typeof child === 'object' && child !== null ? byText.get(canonical(child)) : undefined;
      if (name) node[i] = { $ref: `#/components/schemas/${name}` };
      else replaceCopies(child, byText);
    });
  } else if (isObject(node)) {
    for (const [key, child] of Object.entries(node)) {
      const name = typeof child === 'object' && child !== null ? byText.get(canonical(child)) : undefined;
      if (name) node[key] = { $ref: `#/components/schemas/${name}` };
      else replaceCopies(child, byText);
    }
  }
}

export function operationIdFor(method: string, path: string): string {
  return (
    OPERATION_IDS[`${method.toUpperCase()} ${path}`] ??
    // Fallback so the document still renders; the contract test fails until the route is named.
    method.toLowerCase() + path.split('/').filter(Boolean).map((p) => p.replace(/[{}]/g, '').replace(/(^|[-_])(\w)/g, (_m, _s, c: string) => c.toUpperCase())).join('')
  );
}

export function contractDocument(doc: JsonObject): JsonObject {
  const out = JSON.parse(JSON.stringify(doc)) as JsonObject;
  const paths = (out.paths ?? {}) as JsonObject;
  const components = (isObject(out.components) ? out.components : (out.components = {})) as JsonObject;
  const schemas = (isObject(components.schemas) ? components.schemas : (components.schemas = {})) as JsonObject;

  const byText = new Map<string, string>();
  for (const { name, from } of COMPONENTS) {
    const [path, method, ...rest] = from;
    const schema = dig(paths, [path, method, ...rest]);
    if (!isObject(schema) || schema.$ref) continue;
    schemas[name] = JSON.parse(JSON.stringify(schema)) as Json;
    byText.set(canonical(schema), name);
  }
  // Inside the components (a Job holds a JobSpec), then everywhere in the paths.
  for (const name of byText.values()) replaceCopies(schemas[name], byText);
  replaceCopies(paths, byText);

  const errorRef: Json = byText.size && schemas.ErrorResponse ? { $ref: '#/components/schemas/ErrorResponse' } : { type: 'object' };
  for (const [path, item] of Object.entries(paths)) {
    if (!isObject(item)) continue;
    for (const method of METHODS) {
      const op = item[method];
      if (!isObject(op)) continue;
      op.operationId = operationIdFor(method, path);
      op.security = path.startsWith('/v1/') ? [{ [BEARER_SCHEME]: [] }] : [];
      const responses = (isObject(op.responses) ? op.responses : (op.responses = {})) as JsonObject;
      if (!Object.keys(responses).some((code) => code.startsWith('4'))) {
        responses['4XX'] = { description: 'The request cannot be served as sent (e.g. 404 route_not_found, 415 unsupported_media_type).', content: { 'application/json': { schema: errorRef } } };
      }
    }
  }
  components.securitySchemes = {
    [BEARER_SCHEME]: {
      type: 'http',
      scheme: 'bearer',
      description: 'An API key (gk_...) as `Authorization: Bearer <key>`. Admins create keys with POST /v1/keys; the first admin key is GRAFT_ADMIN_KEY(_FILE) or DATA_DIR/.secrets/admin.key.',
    },
  };
  out.servers = [{ url: '/', description: 'The graft service that serves this document (npm start: http://127.0.0.1:3000).' }];
  const info = (isObject(out.info) ? out.info : (out.info = {})) as JsonObject;
  info.license = { name: 'Apache-2.0', identifier: 'Apache-2.0' };
  return out;
}
