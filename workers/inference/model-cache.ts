import { createHash } from 'node:crypto';
import { promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { GraftError, UnprocessableError } from '../../src/errors';
import { checkpointNotFound, MANIFEST_FILE, MODEL_FILE, parseManifest, preprocessOf, type CheckpointManifest, type Preprocess } from '../../src/storage/checkpoints';
import { loadModel } from '../engine/checkpoint-io';

/** One checkpoint, loaded: the model and what prediction needs from its manifest. */
export interface LoadedModel {
  /** Content hash of the checkpoint (sha256 of manifest.json, which holds the sha256 of every other file). */
  key: string;
  dir: string;
  name: string;
  model: tf.LayersModel;
  inputShape: number[];
  /** Class names, index = output unit; null when the checkpoint is not a classifier. */
  labels: string[] | null;
  preprocess: Preprocess;
  /** Requests holding this model (queued or running): an evicted model is disposed when the last one ends. */
  users: number;
  evicted: boolean;
  /** Sub-models that end at a layer (embeddings), built once per layer. */
  layerModels: Map<string, tf.LayersModel>;
}

interface Identity {
  /** inode, size and mtime of the file hashed: a checkpoint is immutable, so a new stamp means a new checkpoint. */
  stamp: string;
  key: string;
}

/**
 * The models one inference process keeps, least recently used first out, at most `capacity`.
 * Keyed by content hash, never by name: a checkpoint deleted and re-created under the same name
 * has another hash, so its old weights can never answer. Each request stats the checkpoint's
 * manifest and hashes it only when the file changed. The stat is synchronous on purpose: a
 * local metadata lookup costs microseconds, where a thread-pool round trip per request cost
 * this process a tenth of its time under load (bench:predict).
 */
export class ModelCache {
  private readonly models = new Map<string, Promise<LoadedModel>>();
  private readonly identities = new Map<string, Identity>();
  loads = 0;
  evictions = 0;

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.models.size;
  }

  /** The model of checkpoint folder `dir`, loaded if needed; the caller must `release` it. */
  async acquire(dir: string, name: string): Promise<LoadedModel> {
    const key = await this.contentKey(dir, name);
    let entry = this.models.get(key);
    if (entry) {
      this.models.delete(key); // re-insert: Map order is the LRU order
    } else {
      entry = this.load(dir, name, key);
      entry.catch(() => {
        if (this.models.get(key) === entry) this.models.delete(key);
      });
    }
    this.models.set(key, entry);
    this.trim();
    const loaded = await entry;
    loaded.users++;
    return loaded;
  }

  release(loaded: LoadedModel): void {
    loaded.users--;
    if (loaded.evicted && loaded.users === 0) disposeLoaded(loaded);
  }

  /** Drops every model loaded from `dir` (the checkpoint was deleted). */
  async evictDir(dir: string): Promise<number> {
    this.identities.delete(dir);
    let dropped = 0;
    for (const [key, entry] of [...this.models]) {
      const loaded = await entry.catch(() => null);
      // Another eviction (the API's own and the Redis one often arrive together) may have dropped it meanwhile.
      if (loaded?.dir === dir && this.models.get(key) === entry) {
        this.drop(key, loaded);
        dropped++;
      }
    }
    return dropped;
  }

  private trim(): void {
    while (this.models.size > this.capacity) {
      const [oldest, entry] = this.models.entries().next().value as [string, Promise<LoadedModel>];
      this.models.delete(oldest);
      this.evictions++;
      void entry.then((loaded) => this.markEvicted(loaded), () => undefined);
    }
  }

  private drop(key: string, loaded: LoadedModel): void {
    this.models.delete(key);
    this.evictions++;
    this.markEvicted(loaded);
  }

  private markEvicted(loaded: LoadedModel): void {
    loaded.evicted = true;
    if (loaded.users === 0) disposeLoaded(loaded);
  }

  private async contentKey(dir: string, name: string): Promise<string> {
    for (const file of [MANIFEST_FILE, MODEL_FILE]) {
      const full = path.join(dir, file);
      const stat = statSync(full, { throwIfNoEntry: false });
      if (!stat?.isFile()) continue;
      const stamp = `${file}:${stat.ino}:${stat.size}:${stat.mtimeMs}`;
      const known = this.identities.get(dir);
      if (known?.stamp === stamp) return known.key;
      const bytes = await fs.readFile(full).catch(() => null);
      if (!bytes) break;
      const key = createHash('sha256').update(bytes).digest('hex');
      this.identities.set(dir, { stamp, key });
      return key;
    }
    throw checkpointNotFound(name);
  }

  private async load(dir: string, name: string, key: string): Promise<LoadedModel> {
    this.loads++;
    let model: tf.LayersModel;
    let manifest: CheckpointManifest | null;
    try {
      manifest = await fs.readFile(path.join(dir, MANIFEST_FILE)).then((b) => parseManifest(dir, b, null), (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return null;
        throw err;
      });
      model = await loadModel(dir);
    } catch (err) {
      // The engine's reader points at a job's source; here the checkpoint is the path's {name}.
      if (err instanceof GraftError) throw new GraftError(err.code, err.message, { statusCode: err.statusCode, details: err.details });
      throw err;
    }
    const inputShape = model.inputs[0].shape.slice(1);
    if (model.inputs.length !== 1 || inputShape.some((d) => d === null)) {
      model.dispose();
      throw new UnprocessableError('checkpoint_not_servable', `Checkpoint "${name}" has ${model.inputs.length} inputs or an input of unknown size (${JSON.stringify(inputShape)}); prediction needs one input of fixed shape.`);
    }
    const classifier = manifest?.task === 'classification';
    const units = model.outputs[0].shape[model.outputs[0].shape.length - 1];
    const labels = classifier ? (manifest?.labels ?? Array.from({ length: units ?? 0 }, (_, i) => String(i))) : null;
    return { key, dir, name, model, inputShape: inputShape as number[], labels, preprocess: preprocessOf(manifest ?? { inputShape: inputShape as number[] }), users: 0, evicted: false, layerModels: new Map() };
  }
}

/** The model ending at `layer` (its activations are an embedding), built once and cached with the model. */
export function layerModel(loaded: LoadedModel, layer: string | undefined): tf.LayersModel {
  if (layer === undefined) return loaded.model;
  const cached = loaded.layerModels.get(layer);
  if (cached) return cached;
  const found = loaded.model.layers.find((l) => l.name === layer);
  if (!found) {
    const names = loaded.model.layers.map((l) => l.name);
    throw new UnprocessableError('unknown_layer', `Checkpoint "${loaded.name}" has no layer "${layer}"; its layers are: ${names.join(', ')}.`, '/layer', { layers: names });
  }
  const sub = tf.model({ inputs: loaded.model.inputs, outputs: found.output as tf.SymbolicTensor });
  loaded.layerModels.set(layer, sub);
  return sub;
}

function disposeLoaded(loaded: LoadedModel): void {
  // Sub-models share the layers' weights: each dispose drops one reference, the last frees them.
  for (const sub of loaded.layerModels.values()) sub.dispose();
  loaded.layerModels.clear();
  loaded.model.dispose();
}
