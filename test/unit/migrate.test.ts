import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { CheckpointCatalog } from '../../src/storage/checkpoints';
import { DatasetCatalog } from '../../src/storage/datasets';
import { DataLayout } from '../../src/storage/layout';
import { migrateLegacyLayout } from '../../src/storage/migrate';
import { writeMnistIdx } from '../../scripts/mnist-idx';
import { writeTinyCheckpoint } from '../helpers/checkpoint';
import { DIST, makeTempDir } from '../helpers/env';

/**
 * Volumes written before tenants move into tenants/default/ on start (src/storage/migrate.ts): by
 * rename, without loss, harmless to repeat, to run from several processes at once, or to resume
 * after a crash between two renames.
 */
const run = promisify(execFile);

/** Every file under `root` with its size, relative paths: what must survive the move. */
async function inventory(root: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const e of await fs.readdir(root, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out[path.relative(root, path.join(e.parentPath, e.name))] = (await fs.stat(path.join(e.parentPath, e.name))).size;
  }
  return out;
}

/** A v1 volume: datasets/mnist (IDX), datasets/broken, checkpoints/enc, .meta/datasets/mnist.json. */
const made: string[] = [];
afterAll(() => Promise.all(made.map((d) => fs.rm(d, { recursive: true, force: true }))));

async function v1Volume(): Promise<string> {
  const root = await makeTempDir('graft-v1-');
  made.push(root);
  const scratch = await makeTempDir('graft-v1-scratch-');
  await writeTinyCheckpoint(scratch, 'enc');
  await fs.mkdir(path.join(root, 'checkpoints'), { recursive: true });
  await fs.rename(path.join(new DataLayout(scratch).checkpointsDir, 'enc'), path.join(root, 'checkpoints', 'enc'));
  await fs.rm(scratch, { recursive: true });
  await fs.mkdir(path.join(root, 'datasets', 'mnist'), { recursive: true });
  await writeMnistIdx(path.join(root, 'datasets', 'mnist'), { train: 50, test: 10 });
  await fs.mkdir(path.join(root, 'datasets', 'broken'));
  await fs.writeFile(path.join(root, 'datasets', 'broken', 'readme.txt'), 'not a dataset');
  await fs.mkdir(path.join(root, '.meta', 'datasets'), { recursive: true });
  await fs.writeFile(path.join(root, '.meta', 'datasets', 'mnist.json'), '{"version":0}');
  return root;
}

/** Where the files of a v1 volume are expected after the migration. */
const moved = (files: Record<string, number>) => Object.fromEntries(Object.entries(files).map(([rel, size]) => [path.join('tenants', 'default', rel), size]));

describe('migrating a pre-tenant volume', () => {
  it('moves datasets/, checkpoints/ and .meta/datasets/ into tenants/default/ without loss; every object reads as the default tenant', async () => {
    const root = await v1Volume();
    const before = await inventory(root);
    const report = await migrateLegacyLayout(root);
    expect(report).toEqual({ moved: ['datasets', 'checkpoints', path.join('.meta', 'datasets')], conflicts: [] });
    expect(await inventory(root)).toEqual(moved(before));
    expect((await fs.readdir(root)).sort()).toEqual(['tenants']);

    const layout = new DataLayout(root);
    expect((await new DatasetCatalog(layout).describe('mnist')).splits.train.count).toBe(50);
    expect((await new CheckpointCatalog(layout).describe('enc')).tenant).toBe('default');
    expect((await new DatasetCatalog(layout).list()).map((d) => [d.name, d.error?.code ?? null])).toEqual([
      ['broken', 'dataset_invalid'],
      ['mnist', null],
    ]);
    // Again: nothing to do, nothing changes.
    const after = await inventory(root);
    expect(await migrateLegacyLayout(root)).toEqual({ moved: [], conflicts: [] });
    expect(await inventory(root)).toEqual(after);
  });

  it('is harmless when run by several processes and in-process callers at once', async () => {
    const root = await v1Volume();
    const before = await inventory(root);
    const script = `require(${JSON.stringify(path.join(DIST, 'src', 'storage', 'migrate.js'))}).migrateLegacyLayout(process.argv[1]).then((r) => console.log(JSON.stringify(r)))`;
    const [a, b, , d] = await Promise.all([
      run(process.execPath, ['-e', script, root]),
      run(process.execPath, ['-e', script, root]),
      new DataLayout(root).ensure(),
      migrateLegacyLayout(root),
    ]);
    const reports = [JSON.parse(a.stdout), JSON.parse(b.stdout), d];
    // Each folder moved exactly once, by someone; nobody saw a conflict.
    expect(reports.flatMap((r) => r.conflicts)).toEqual([]);
    const after = await inventory(root);
    expect(after).toEqual(moved(before));
    expect((await fs.readdir(root)).sort()).toEqual(['.tmp', 'tenants']);
  }, 30_000);

  it('finishes a migration a crash interrupted, and never overwrites an object already in tenants/default/', async () => {
    const root = await v1Volume();
    // A crash after the datasets moved: checkpoints/ still at the old place, and meanwhile a new
    // checkpoint `enc` (different bytes) was written to the new one, plus `other`.
    await fs.mkdir(path.join(root, 'tenants', 'default'), { recursive: true });
    await fs.rename(path.join(root, 'datasets'), path.join(root, 'tenants', 'default', 'datasets'));
    await fs.mkdir(path.join(root, 'checkpoints', 'other'));
    await fs.writeFile(path.join(root, 'checkpoints', 'other', 'model.json'), '{}');
    const newer = path.join(root, 'tenants', 'default', 'checkpoints', 'enc');
    await fs.mkdir(newer, { recursive: true });
    await fs.writeFile(path.join(newer, 'model.json'), '{"newer":true}');

    const report = await migrateLegacyLayout(root);
    expect(report.moved.sort()).toEqual([path.join('.meta', 'datasets'), path.join('checkpoints', 'other')]);
    expect(report.conflicts).toEqual([path.join('checkpoints', 'enc')]);
    // The newer object is untouched; the older one is kept where it was, not lost.
    expect(await fs.readFile(path.join(newer, 'model.json'), 'utf8')).toBe('{"newer":true}');
    expect(await fs.readdir(path.join(root, 'checkpoints', 'enc'))).toContain('model.json');
    expect(await fs.readFile(path.join(root, 'tenants', 'default', 'checkpoints', 'other', 'model.json'), 'utf8')).toBe('{}');
    expect(await fs.readdir(path.join(root, 'tenants', 'default', 'datasets'))).toEqual(expect.arrayContaining(['mnist', 'broken']));
  });
});
