import { promises as fs } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { DataLayout } from '../../src/storage/layout';
import { Random } from '../../workers/engine/data/random';

/**
 * A small image-folder dataset that a tiny network can learn: class `dark` has pixel values in
 * 0-119, class `light` in 136-255, with seeded noise and a per-class stripe. Written as
 * `<tenant's datasets folder>/<name>/[train|test]/<class>/<i>.<ext>` (the default tenant unless given).
 */
export async function writeImageDataset(
  dataDir: string,
  name: string,
  opts: { train: number; test?: number; size?: number; ext?: 'png' | 'jpg' | 'webp' | 'gif' | 'tiff'; seed?: number; tenant?: string },
): Promise<string> {
  const root = new DataLayout(dataDir, opts.tenant).datasetDir(name);
  const size = opts.size ?? 12;
  const rng = new Random(opts.seed ?? 7);
  const ext = opts.ext ?? 'png';
  for (const [split, n] of [['train', opts.train], ['test', opts.test ?? 0]] as const) {
    if (n === 0) continue;
    for (const [label, cls] of ['dark', 'light'].entries()) {
      const dir = path.join(root, split, cls);
      await fs.mkdir(dir, { recursive: true });
      for (let i = 0; i < n; i++) {
        const pixels = Buffer.alloc(size * size * 3);
        for (let p = 0; p < pixels.length; p++) {
          const stripe = Math.floor(p / 3) % size === (label === 0 ? 2 : size - 3) ? 60 : 0;
          pixels[p] = Math.min(255, (label === 0 ? 0 : 136) + Math.floor(rng.next() * 60) + stripe);
        }
        await sharp(pixels, { raw: { width: size, height: size, channels: 3 } }).toFormat(ext === 'jpg' ? 'jpeg' : ext).toFile(path.join(dir, `${i}.${ext}`));
      }
    }
  }
  return root;
}
