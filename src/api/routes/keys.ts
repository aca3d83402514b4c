import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { KEY_ID_PATTERN } from '../../auth/api-key';
import type { ApiKeyRecord } from '../../auth/key-store';
import { ROLES, TENANT_PATTERN, isAdmin, type Principal } from '../../auth/principal';
import { ForbiddenError, NotFoundError } from '../../errors';
import { errorResponses } from '../schemas/errors';
import type { AppDeps } from '../services';

const TenantSchema = Type.String({ pattern: TENANT_PATTERN, description: 'Tenant id: lower-case letters, digits and -, 1-63 characters.' });

const ApiKeySchema = Type.Object({
  id: Type.String({ pattern: KEY_ID_PATTERN, description: 'The key\'s id (not a secret): name it in DELETE /v1/keys/{id}.' }),
  tenant: TenantSchema,
  role: Type.Enum([...ROLES]),
  name: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  revokedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

const CreatedKeySchema = Type.Object({
  id: Type.String({ pattern: KEY_ID_PATTERN }),
  key: Type.String({ description: 'The secret, shown this once: graft stores only its sha256. Send it as Authorization: Bearer <key>.' }),
  tenant: TenantSchema,
  role: Type.Enum([...ROLES]),
  name: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
});

const KeyIdParams = Type.Object({ id: Type.String({ pattern: KEY_ID_PATTERN }) }, { additionalProperties: false });

/** Every answer about a key the caller may not see is this one, word for word. */
const keyNotFound = (id: string) => new NotFoundError('key_not_found', `There is no API key "${id}".`);

/** API keys (issue 11): admins create them for any tenant; everyone sees and members revoke their own tenant's. */
export const keyRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.post(
    '/keys',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['keys'],
        summary: 'Create an API key (admin); the secret is in this answer only',
        body: Type.Object(
          {
            tenant: TenantSchema,
            role: Type.Enum([...ROLES], { description: 'admin: everything, every tenant; member: read and write in its tenant; reader: read only in its tenant.' }),
            name: Type.String({ minLength: 1, maxLength: 100, pattern: '^[\\x20-\\x7e]+$', description: 'What the key is for (shown in listings and the audit log).' }),
          },
          { additionalProperties: false },
        ),
        response: { 201: CreatedKeySchema, ...errorResponses(400, 401, 403, 429) },
      },
    },
    async (request, reply) => {
      const { record, key } = await deps.keys.create(request.body);
      await deps.audit.record({ actor: request.principal, action: 'key.create', target: { kind: 'key', tenant: record.tenant, id: record.id }, details: { role: record.role, name: record.name } });
      return reply.status(201).send({ id: record.id, key, tenant: record.tenant, role: record.role, name: record.name, createdAt: record.createdAt });
    },
  );

  app.get(
    '/keys',
    {
      schema: {
        tags: ['keys'],
        summary: 'List API keys (admin: every tenant\'s; others: their tenant\'s), never their secrets',
        querystring: Type.Object({ tenant: Type.Optional(TenantSchema) }, { additionalProperties: false }),
        response: { 200: Type.Object({ data: Type.Array(ApiKeySchema) }), ...errorResponses(400, 401, 403, 429) },
      },
    },
    async (request) => {
      const { principal } = request;
      const wanted = request.query.tenant;
      // Anyone but an admin sees its own tenant only, whatever it asks for.
      if (!isAdmin(principal) && wanted !== undefined && wanted !== principal.tenant) return { data: [] };
      return { data: await deps.keys.list({ tenant: isAdmin(principal) ? wanted : principal.tenant }) };
    },
  );

  app.delete(
    '/keys/:id',
    {
      schema: {
        tags: ['keys'],
        summary: 'Revoke an API key (admin: any; member: its tenant\'s non-admin keys); it stops working on every API process within a second',
        params: KeyIdParams,
        response: { 204: Type.Null(), ...errorResponses(400, 401, 403, 404, 429) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const record = await deps.keys.get(id);
      if (!record || !visibleTo(record, request.principal)) throw keyNotFound(id);
      if (!isAdmin(request.principal) && record.role === 'admin') {
        throw new ForbiddenError('forbidden', `Only an admin key may revoke an admin key; this key's role is ${request.principal.role}.`);
      }
      if (!record.revokedAt) {
        await deps.keys.revoke(id);
        await deps.audit.record({ actor: request.principal, action: 'key.revoke', target: { kind: 'key', tenant: record.tenant, id }, details: { role: record.role, name: record.name } });
      }
      return reply.status(204).send(null);
    },
  );
};

function visibleTo(record: ApiKeyRecord, principal: Principal): boolean {
  return isAdmin(principal) || record.tenant === principal.tenant;
}
