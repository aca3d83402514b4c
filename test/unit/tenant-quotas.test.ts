import { Redis } from 'ioredis';
import { JobKeys } from '../../src/jobs/keys';
import { TenantQuotas, type QuotaValues } from '../../src/tenants/quotas';
import { deleteQueueKeys, TEST_REDIS_URL, uniqueQueueName } from '../helpers/env';

const DEFAULTS: QuotaValues = { maxStorageBytes: 1000, uploadsPerMinute: 10, maxActiveJobs: 5, maxConcurrentJobs: 0 };

describe('TenantQuotas (real Redis)', () => {
  let redis: Redis;
  let queueName: string;

  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL);
  });
  beforeEach(() => {
    queueName = uniqueQueueName();
  });
  afterEach(async () => deleteQueueKeys(queueName));
  afterAll(async () => {
    await redis.quit();
  });

  it('applies an override over the defaults', async () => {
    const quotas = new TenantQuotas(redis, new JobKeys(queueName), DEFAULTS);
    expect(await quotas.set('acme', { maxActiveJobs: 2 })).toEqual({ ...DEFAULTS, maxActiveJobs: 2 });
    expect(await quotas.get('acme', { recent: true })).toEqual({ ...DEFAULTS, maxActiveJobs: 2 });
  });

  // An admin's change drops the cached entry, which aborts a recent read in flight ("deleted");
  // that reached a submission as a 500 when the two raced.
  it('a change while recent reads are in flight fails none of them', async () => {
    for (let round = 0; round < 10; round++) {
      const quotas = new TenantQuotas(redis, new JobKeys(queueName), DEFAULTS);
      // The change is written first; the reads' fetch goes out behind it and is still in flight
      // when the change drops the cached entry.
      const change = quotas.set('acme', { maxActiveJobs: round + 1 });
      const reads = [quotas.get('acme', { recent: true }), quotas.get('acme', { recent: true })];
      const settled = await Promise.allSettled([change, ...reads]);
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    }
  });
});
