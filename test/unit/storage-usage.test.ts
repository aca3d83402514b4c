import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DataLayout } from '../../src/storage/layout';
import { StorageUsage } from '../../src/tenants/storage-usage';
import { makeTempDir } from '../helpers/env';

describe('StorageUsage', () => {
  let root: string;
  let layout: DataLayout;

  beforeEach(async () => {
    root = await makeTempDir('graft-usage-');
    layout = new DataLayout(root);
    await layout.ensure();
    for (let i = 0; i < 20; i++) {
      const dir = layout.datasetDir(`d${i}`);
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, 'data.bin'), Buffer.alloc(100 + i));
    }
  });

  afterEach(async () => fs.rm(root, { recursive: true, force: true }));

  it('measures every object of the tenant', async () => {
    const usage = await new StorageUsage(layout).bytes('default');
    expect(usage).toEqual({ datasets: 20 * 100 + 190, checkpoints: 0, total: 20 * 100 + 190 });
  });

  // An upload's fresh measurement is stored while a submission waits on a shared (recent) one;
  // the cache aborts the fetch in flight ("replaced"), which reached a submission as a 500.
  it('a fresh measurement stored while recent ones are in flight fails none of them', async () => {
    for (let round = 0; round < 20; round++) {
      // A cold cache each round: the fresh measurement starts first and is stored while the
      // recent one's fetch is still measuring.
      const usage = new StorageUsage(layout);
      const asked = [usage.bytes('default'), usage.bytes('default', { recent: true }), usage.bytes('default', { recent: true })];
      const settled = await Promise.allSettled(asked);
      expect(settled.map((s) => (s.status === 'fulfilled' ? s.value.total : String(s.reason)))).toEqual(asked.map(() => 2190));
    }
  });
});
