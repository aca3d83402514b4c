import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ROLES, TENANT_PATTERN } from '../../auth/principal';
import { errorResponses } from '../schemas/errors';
import type { AppDeps } from '../services';

const AUDIT_ID_PATTERN = '^[0-9]{1,20}-[0-9]{1,20}$';

const AuditEntrySchema = Type.Object({
  id: Type.String({ description: 'Ordered entry id; pass it as `after` to continue after it.' }),
  at: Type.String({ format: 'date-time' }),
  actor: Type.Object({
    keyId: Type.Union([Type.String(), Type.Null()], { description: 'The API key that acted (null with GRAFT_AUTH=off).' }),
    keyName: Type.Union([Type.String(), Type.Null()]),
    tenant: Type.String({ description: 'The tenant it acted in.' }),
    role: Type.Enum([...ROLES]),
  }),
  action: Type.String({ description: 'e.g. job.create, job.cancel, dataset.delete, checkpoint.publish, key.create, key.revoke.' }),
  target: Type.Object({ kind: Type.Enum(['job', 'dataset', 'checkpoint', 'key', 'tenant']), tenant: Type.String(), id: Type.String() }),
  details: Type.Record(Type.String(), Type.Unknown()),
});

/** GET /v1/audit (admin): who created, cancelled, deleted or published what, kept for JOB_RETENTION_SECONDS. */
export const auditRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get(
    '/audit',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['keys'],
        summary: 'The audit log, oldest first (admin)',
        description: 'Who created, cancelled, deleted or published what. Entries are kept for JOB_RETENTION_SECONDS. Page with `after` = the previous page\'s nextCursor.',
        querystring: Type.Object(
          {
            after: Type.Optional(Type.String({ pattern: AUDIT_ID_PATTERN, description: 'Return entries after this id.' })),
            limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
            tenant: Type.Optional(Type.String({ pattern: TENANT_PATTERN, description: 'Only entries whose actor or target is in this tenant.' })),
            action: Type.Optional(Type.String({ pattern: '^[a-z]+\\.[a-z_]+$', description: 'Only this action, e.g. key.revoke.' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ data: Type.Array(AuditEntrySchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errorResponses(400, 401, 403, 429) },
      },
    },
    async (request) => {
      const { entries, next } = await deps.audit.list(request.query);
      return { data: entries, nextCursor: next };
    },
  );
};
