import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { GraftError } from '../../src/errors';
import { JobKeys } from '../../src/jobs/keys';
import { DataLayout } from '../../src/storage/layout';
import { TenantQuotas } from '../../src/tenants/quotas';
import { StorageHolds } from '../../src/tenants/storage-holds';
import { StorageQuota } from '../../src/tenants/storage-quota';
import { StorageUsage } from '../../src/tenants/storage-usage';
import { UploadRate } from '../../src/tenants/upload-rate';
import { deleteQueueKeys, makeTempDir, TEST_REDIS_URL, uniqueQueueName } from '../helpers/env';

const QUOTA = 1000;
const HOLD_MS = 60_000;

/** The storage quota under concurrent uploads, on real Redis and a real volume: the grants of uploads in flight count as used. */
describe('StorageQuota.reserve with StorageHolds (real Redis)', () => {
  let redis: Redis;
  let queueName: string;
  let root: string;
  let layout: DataLayout;

  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL);
  });
  beforeEach(async () => {
    queueName = uniqueQueueName();
    root = await makeTempDir('graft-holds-');
    layout = new DataLayout(root);
    await layout.ensure();
  });
  afterEach(async () => {
    await deleteQueueKeys(queueName);
    await fs.rm(root, { recursive: true, force: true });
  });
  afterAll(async () => {
    await redis.quit();
  });

  /** One API process's quota service; several share Redis and the volume as API processes do. */
  const quotaService = (holdMs = HOLD_MS) => {
    const keys = new JobKeys(queueName);
    const holds = new StorageHolds(redis, keys, holdMs);
    const quotas = new TenantQuotas(redis, keys, { maxStorageBytes: QUOTA, uploadsPerMinute: 0, maxActiveJobs: 0, maxConcurrentJobs: 0 });
    return { holds, quota: new StorageQuota(quotas, new StorageUsage(layout), new UploadRate(redis, keys), holds) };
  };
  /** What an install puts in place: a dataset folder of `bytes` bytes. */
  const install = async (name: string, bytes: number) => {
    const dir = layout.forTenant('acme').datasetDir(name);
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'data.bin'), Buffer.alloc(bytes));
  };
  const refusal = (err: unknown) => (err instanceof GraftError ? [err.statusCode, err.code, err.details] : err);

  it('two concurrent uploads that fit alone but not together, on two API processes: one granted, one 403 counting the other', async () => {
    for (let round = 0; round < 5; round++) {
      const [a, b] = [quotaService(), quotaService()];
      const settled = await Promise.allSettled([a.quota.reserve('acme', 600), b.quota.reserve('acme', 600)]);
      const granted = settled.filter((s): s is PromiseFulfilledResult<() => Promise<void>> => s.status === 'fulfilled');
      const refused = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
      expect([granted.length, refused.length]).toEqual([1, 1]);
      expect(refusal(refused[0].reason)).toEqual([403, 'quota_exceeded', { quota: 'maxStorageBytes', used: 600, requested: 600, limit: QUOTA }]);
      // Released without installing (the upload failed): the bytes are free again.
      await granted[0].value();
      const again = await b.quota.reserve('acme', 600);
      await again();
    }
  });

  it('bytes installed and released are measured; a measurement taken before an install is not used after it', async () => {
    const { quota, holds } = quotaService();
    const release = await quota.reserve('acme', 600);
    await install('first', 600);
    // A measurement that started before the release: its generation is stale once the hold is gone.
    const before = await holds.generation('acme');
    await release();
    expect(await holds.grant('acme', before, 'late', 600, 0, QUOTA)).toEqual({ stale: true });
    // Measured again, the installed bytes count.
    await expect(quota.reserve('acme', 600)).rejects.toMatchObject({ statusCode: 403, details: { used: 600, requested: 600 } });
    const small = await quota.reserve('acme', 400);
    await small();
  });

  it("a crashed process's hold lapses after its time", async () => {
    const { quota } = quotaService(300);
    await quota.reserve('acme', 600); // never released, as if its API process died
    await expect(quota.reserve('acme', 600)).rejects.toMatchObject({ statusCode: 403 });
    await new Promise((r) => setTimeout(r, 400));
    const release = await quota.reserve('acme', 600);
    await release();
  });

  it('another tenant, and the public namespace, are not affected', async () => {
    const { quota } = quotaService();
    await quota.reserve('acme', 900);
    const beta = await quota.reserve('beta', 900);
    const published = await quota.reserve('public', 10 * QUOTA);
    await Promise.all([beta(), published()]);
  });
});
