import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { ResizePolicy } from '../../spec/preprocess';
import type { DataLayout } from '../layout';
import { fingerprintOf } from './description-store';
import { formatOf } from './formats';
import { DEFAULT_DATASET_LIMITS } from './limits';
import { locateDataset } from './scan';
import type { DatasetLimits, ImageShape, SplitName, SplitReader } from './types';

/**
 * The sample cache: a dataset split decoded once, at one model input shape and resize policy,
 * into uint8 shards on the volume, so later jobs (and later epochs) read pixels instead of
 * decoding images again, and no job needs the whole split in memory.
 *
 *   datasets/<name>/.cache/<key>/index.json        count, shape, labels, stamp
 *   datasets/<name>/.cache/<key>/shard-00000.u8    samplesPerShard samples, HWC uint8, back to back
 *
 * `key` hashes the dataset's content stamp with the split, shape and resize policy: a changed
 * dataset gets a new key (stale keys are removed when the new one is built). Hidden, so formats
 * never take it for data; inside the dataset folder, so it is counted in the dataset's size and
 * deleted with it. Built in a staging folder beside it and renamed into place: concurrent jobs
 * each see either no cache or a complete one (the loser of a race discards its copy).
 *
 * Formats whose data already is pixels (IDX) are not cached: they are read into memory as uint8
 * (a quarter of the float32 they used to take).
 */
export const CACHE_DIR = '.cache';
const INDEX_FILE = 'index.json';
const CACHE_VERSION = 1;

export interface SampleStore {
  readonly count: number;
  readonly shape: ImageShape;
  /** Class index per sample. */
  readonly labels: Int32Array;
  readonly classes: string[];
  /** Samples `indices`, back to back, into `out` (indices.length × sample bytes). */
  read(indices: ArrayLike<number>, out: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export interface OpenSamplesOptions {
  split: SplitName;
  /** The model's input [height, width, channels]; null = the dataset's own shape. */
  inputShape: ImageShape | null;
  resize: ResizePolicy;
  limits?: DatasetLimits;
  /** Target size of one shard file (SAMPLE_CACHE_SHARD_MB). */
  shardBytes: number;
  /** Decoding progress of a cache being built. */
  onBuild?(done: number, total: number): Promise<void> | void;
}

/** How the store was obtained, for the job's log and the benchmark. */
export interface SampleStoreOrigin {
  source: 'memory' | 'cache-hit' | 'cache-built';
  /** Seconds spent decoding (0 on a hit). */
  decodeSeconds: number;
  dir: string | null;
}

export async function openSamples(layout: DataLayout, name: string, opts: OpenSamplesOptions): Promise<{ store: SampleStore; origin: SampleStoreOrigin }> {
  const files = await locateDataset(layout, name);
  const limits = opts.limits ?? DEFAULT_DATASET_LIMITS;
  const reader = await formatOf(files).open(files, { inputShape: opts.inputShape, split: opts.split, resize: opts.resize }, limits);
  if (!reader.costly) {
    const started = performance.now();
    const store = await MemorySamples.decode(reader);
    return { store, origin: { source: 'memory', decodeSeconds: (performance.now() - started) / 1000, dir: null } };
  }
  const stamp = await contentStamp(files.dir);
  const key = createHash('sha256')
    .update(JSON.stringify({ v: CACHE_VERSION, stamp, split: opts.split, shape: reader.shape, resize: opts.resize, count: reader.count }))
    .digest('hex')
    .slice(0, 24);
  const root = path.join(files.dir, CACHE_DIR);
  const dir = path.join(root, key);
  const existing = await ShardedSamples.open(dir, reader);
  if (existing) return { store: existing, origin: { source: 'cache-hit', decodeSeconds: 0, dir } };

  const started = performance.now();
  await buildCache(root, dir, key, stamp, reader, opts);
  const decodeSeconds = (performance.now() - started) / 1000;
  const store = await ShardedSamples.open(dir, reader);
  if (!store) throw new Error(`the sample cache ${dir} vanished right after it was built`);
  await removeStale(root, key, stamp);
  return { store, origin: { source: 'cache-built', decodeSeconds, dir } };
}

interface CacheIndex {
  version: number;
  stamp: string;
  count: number;
  shape: ImageShape;
  samplesPerShard: number;
  shards: number;
}

/** What the dataset holds, as cheap to compute as the description's fingerprint; the cache itself excluded. */
export async function contentStamp(datasetDir: string): Promise<string> {
  const fingerprint = await fingerprintOf(datasetDir);
  const kept = Object.entries(fingerprint)
    // The folder's own mtime changes when .cache is created; its entries name every change that matters.
    .filter(([rel]) => rel !== '.' && rel !== CACHE_DIR && !rel.startsWith(`${CACHE_DIR}${path.sep}`))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256').update(JSON.stringify(kept)).digest('hex');
}

/** Decodes every sample of `reader` into shards in a staging folder, then renames it to `dir`. */
async function buildCache(root: string, dir: string, key: string, stamp: string, reader: SplitReader, opts: OpenSamplesOptions): Promise<void> {
  await fs.mkdir(root, { recursive: true });
  const staging = path.join(root, `.staging-${key}-${randomUUID()}`);
  await fs.mkdir(staging);
  const sampleBytes = reader.shape[0] * reader.shape[1] * reader.shape[2];
  const samplesPerShard = Math.max(1, Math.floor(opts.shardBytes / sampleBytes));
  const shards = Math.ceil(reader.count / samplesPerShard);
  const handles = new Map<number, Promise<FileHandle>>();
  const handle = (shard: number) => {
    let h = handles.get(shard);
    if (!h) {
      h = fs.open(path.join(staging, shardFile(shard)), 'w');
      handles.set(shard, h);
    }
    return h;
  };
  let done = 0;
  try {
    await reader.decodeAll(async (i, pixels) => {
      const fh = await handle(Math.floor(i / samplesPerShard));
      // Positional writes: samples finish out of order, each lands at its own offset.
      await fh.write(pixels, 0, sampleBytes, (i % samplesPerShard) * sampleBytes);
      done++;
      if (done % 256 === 0 || done === reader.count) await opts.onBuild?.(done, reader.count);
    });
    for (const h of handles.values()) await (await h).close();
    handles.clear();
    const index: CacheIndex = { version: CACHE_VERSION, stamp, count: reader.count, shape: reader.shape, samplesPerShard, shards };
    await fs.writeFile(path.join(staging, INDEX_FILE), JSON.stringify(index));
    try {
      await fs.rename(staging, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Another job built the same cache first: its copy is as good as ours.
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      await fs.rm(staging, { recursive: true, force: true });
    }
  } catch (err) {
    for (const h of handles.values()) await h.then((fh) => fh.close()).catch(() => undefined);
    await fs.rm(staging, { recursive: true, force: true });
    throw err;
  }
}

/** Caches built from an older content of the dataset: nothing will read them again. */
async function removeStale(root: string, keep: string, stamp: string): Promise<void> {
  const entries = await fs.readdir(root).catch(() => [] as string[]);
  for (const entry of entries) {
    if (entry === keep || entry.startsWith('.staging-')) continue;
    const index = await readIndex(path.join(root, entry));
    if (index && index.stamp !== stamp) await fs.rm(path.join(root, entry), { recursive: true, force: true });
  }
}

async function readIndex(dir: string): Promise<CacheIndex | null> {
  const index = await fs.readFile(path.join(dir, INDEX_FILE), 'utf8').then((s) => JSON.parse(s) as CacheIndex).catch(() => null);
  return index?.version === CACHE_VERSION ? index : null;
}

const shardFile = (shard: number) => `shard-${String(shard).padStart(5, '0')}.u8`;

/** Samples read from shard files with positional reads: memory does not grow with the dataset. */
class ShardedSamples implements SampleStore {
  private closed = false;

  private constructor(
    readonly count: number,
    readonly shape: ImageShape,
    readonly labels: Int32Array,
    readonly classes: string[],
    private readonly samplesPerShard: number,
    private readonly handles: FileHandle[],
  ) {}

  /** The cache in `dir` if it is complete and matches `reader`; null if there is none. */
  static async open(dir: string, reader: SplitReader): Promise<ShardedSamples | null> {
    const index = await readIndex(dir);
    if (!index || index.count !== reader.count || index.shape.join() !== reader.shape.join()) return null;
    const handles: FileHandle[] = [];
    try {
      for (let s = 0; s < index.shards; s++) handles.push(await fs.open(path.join(dir, shardFile(s)), 'r'));
    } catch (err) {
      await Promise.all(handles.map((h) => h.close()));
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null; // removed under us: rebuild
      throw err;
    }
    return new ShardedSamples(index.count, index.shape, reader.labels, reader.classes, index.samplesPerShard, handles);
  }

  async read(indices: ArrayLike<number>, out: Uint8Array): Promise<void> {
    const size = this.shape[0] * this.shape[1] * this.shape[2];
    const reads: Promise<unknown>[] = [];
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k];
      if (!(i >= 0 && i < this.count)) throw new RangeError(`sample ${i} is outside 0..${this.count - 1}`);
      const fh = this.handles[Math.floor(i / this.samplesPerShard)];
      reads.push(fh.read(out, k * size, size, (i % this.samplesPerShard) * size));
    }
    await Promise.all(reads);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.handles.map((h) => h.close()));
  }
}

/** A split whose pixels are cheap to hold: uint8 in memory. */
class MemorySamples implements SampleStore {
  private constructor(
    readonly count: number,
    readonly shape: ImageShape,
    readonly labels: Int32Array,
    readonly classes: string[],
    private readonly pixels: Uint8Array,
  ) {}

  static async decode(reader: SplitReader): Promise<MemorySamples> {
    const size = reader.shape[0] * reader.shape[1] * reader.shape[2];
    const pixels = new Uint8Array(reader.count * size);
    await reader.decodeAll((i, p) => pixels.set(p.subarray(0, size), i * size));
    return new MemorySamples(reader.count, reader.shape, reader.labels, reader.classes, pixels);
  }

  read(indices: ArrayLike<number>, out: Uint8Array): Promise<void> {
    const size = this.shape[0] * this.shape[1] * this.shape[2];
    for (let k = 0; k < indices.length; k++) out.set(this.pixels.subarray(indices[k] * size, (indices[k] + 1) * size), k * size);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
