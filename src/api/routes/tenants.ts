import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { isAdmin } from '../../auth/principal';
import { NotFoundError } from '../../errors';
import { assertAdmin } from '../../tenants/access';
import { errorResponses } from '../schemas/errors';
import { TenantParams, TenantQuotasUpdateSchema, TenantReportSchema } from '../schemas/tenants';
import type { AppDeps } from '../services';

/**
 * A tenant's quotas and usage. Admins see and set any tenant's; everyone else sees only their own
 * (another tenant's id is a 404, whether anyone uses it or not).
 */
export const tenantRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get(
    '/tenants/:tenant',
    {
      schema: {
        tags: ['tenants'],
        summary: 'Quotas and usage of a tenant (admins: any; others: their own)',
        params: TenantParams,
        response: { 200: TenantReportSchema, ...errorResponses(400, 404) },
      },
    },
    async (request) => {
      const { tenant } = request.params;
      if (!isAdmin(request.principal) && request.principal.tenant !== tenant) throw new NotFoundError('tenant_not_found', `There is no tenant "${tenant}".`);
      return deps.storageQuota.report(tenant);
    },
  );

  app.put(
    '/tenants/:tenant/quotas',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tenants'],
        summary: 'Override quotas of a tenant (admin)',
        description: 'Stored in Redis: every API process applies it at once. Fields left out keep their value; null restores the config default.',
        params: TenantParams,
        body: TenantQuotasUpdateSchema,
        response: { 200: TenantReportSchema, ...errorResponses(400, 403) },
      },
    },
    async (request) => {
      assertAdmin(request.principal);
      const { tenant } = request.params;
      await deps.tenantQuotas.set(tenant, request.body);
      await deps.audit.record({ actor: request.principal, action: 'tenant.quota', target: { kind: 'tenant', tenant, id: tenant }, details: { ...request.body } });
      return deps.storageQuota.report(tenant);
    },
  );
};
