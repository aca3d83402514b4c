import path from 'node:path';
import { DataLayout } from '../../src/storage/layout';
import { writeMnistIdx } from '../../scripts/mnist-idx';

/** A real-MNIST IDX dataset of the given size under DATA_DIR/tenants/<tenant>/datasets/<name>. */
export async function writeMnistDataset(dataDir: string, name = 'mnist', sizes: { train: number; test: number } = { train: 600, test: 200 }, tenant?: string): Promise<string> {
  const layout = new DataLayout(dataDir, tenant);
  const dir = layout.datasetDir(name);
  await layout.writeDirAtomically(dir, (staging) => writeMnistIdx(staging, sizes).then(() => undefined), 'dataset');
  return path.join(dir);
}
