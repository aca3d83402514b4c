import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { GraftError, NotFoundError } from '../../src/errors';
import {
  MANIFEST_FILE,
  MANIFEST_FORMAT_VERSION,
  MODEL_FILE,
  allWeightSpecs,
  corruptCheckpoint,
  manifestProblem,
  parseManifest,
  parseModelJson,
  weightSpecBytes,
  type CheckpointFileEntry,
  type CheckpointManifest,
  type LayerSummary,
  type ManifestInput,
  type ModelJson,
  type WeightSpec,
} from '../../src/storage/checkpoints';
import type { DataLayout } from '../../src/storage/layout';

/**
 * Checkpoints on the volume, training side (volume layout: docs/ARCHITECTURE.md): a filesystem IOHandler (tfjs-node's
 * `file://` handler is not available everywhere we run), verified reads and atomic writes.
 * The manifest types are defined in src/storage/checkpoints.ts so the API can use them without
 * loading TensorFlow; they are re-exported here for the engine.
 */
export type { CheckpointManifest, LayerSummary, ManifestInput } from '../../src/storage/checkpoints';

/** tfjs splits weights into 4 MB shards too: small files stream and cache well (and suit object storage later). */
const SHARD_BYTES = 4 * 1024 * 1024;
/** Where a checkpoint problem points in a job spec: checkpoints are read as a job's source. */
const SOURCE_PARAM = '/source/checkpoint';
const UPLOAD_PARAM = '/file';
const DEFAULT_GENERATED_BY = `TensorFlow.js tfjs-layers v${tf.version_layers}`;
/** ModelArtifacts fields that model.json carries verbatim when present. */
const OPTIONAL_MODEL_FIELDS = ['trainingConfig', 'userDefinedMetadata', 'signature', 'modelInitializer', 'initializerSignature'] as const;

export interface DecodedWeight {
  shape: number[];
  dtype: string;
  values: Float32Array | Int32Array;
}

export interface CheckpointContents {
  modelTopology: object;
  /** Keyed by `<layer>/<weight>`, in model.json order. */
  weights: Map<string, DecodedWeight>;
  manifest: CheckpointManifest | null;
}

/**
 * Reads and writes one checkpoint folder in the tfjs layers format (model.json + *.bin shards).
 * Saving never overwrites a file: checkpoints are written once, into a fresh staging folder.
 */
export class FileSystemIOHandler implements tf.io.IOHandler {
  constructor(readonly dir: string) {}

  async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
    if (!artifacts.modelTopology || artifacts.modelTopology instanceof ArrayBuffer) {
      throw new Error('FileSystemIOHandler saves models with a JSON topology only (tf.LayersModel).');
    }
    const data = artifacts.weightData ? tf.io.CompositeArrayBuffer.join(artifacts.weightData) : new ArrayBuffer(0);
    const shardCount = Math.ceil(data.byteLength / SHARD_BYTES);
    const paths = Array.from({ length: shardCount }, (_, i) => `group1-shard${i + 1}of${shardCount}.bin`);
    await fs.mkdir(this.dir, { recursive: true });
    for (const [i, file] of paths.entries()) {
      const start = i * SHARD_BYTES;
      await writeFileDurably(path.join(this.dir, file), new Uint8Array(data, start, Math.min(SHARD_BYTES, data.byteLength - start)));
    }
    const modelJson: tf.io.ModelJSON = {
      format: artifacts.format ?? 'layers-model',
      generatedBy: artifacts.generatedBy ?? DEFAULT_GENERATED_BY,
      convertedBy: artifacts.convertedBy ?? null,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths, weights: artifacts.weightSpecs ?? [] }],
    };
    for (const field of OPTIONAL_MODEL_FIELDS) {
      if (artifacts[field] != null) Object.assign(modelJson, { [field]: artifacts[field] });
    }
    // Shards first: whoever finds model.json finds the files it names.
    await writeFileDurably(path.join(this.dir, MODEL_FILE), JSON.stringify(modelJson));
    return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
  }

  /** Verified like readCheckpoint: a model is never built from files that fail their manifest. */
  async load(): Promise<tf.io.ModelArtifacts> {
    const files = await readVerified(this.dir);
    return tf.io.getModelArtifactsForJSON(files.modelJson as unknown as tf.io.ModelJSON, async () => [
      files.specs as tf.io.WeightsManifestEntry[],
      files.weightData,
    ]);
  }
}

/** Weights by name without building a model (to restore a subset into another network). */
export async function readCheckpoint(dir: string): Promise<CheckpointContents> {
  const { modelJson, manifest, specs, weightData } = await readVerified(dir);
  const weights = new Map<string, DecodedWeight>();
  let offset = 0;
  for (const spec of specs) {
    const end = offset + weightSpecBytes(spec);
    weights.set(spec.name, decodeWeight(spec, weightData.slice(offset, end)));
    offset = end;
  }
  return { modelTopology: modelJson.modelTopology, weights, manifest };
}

/** The checkpoint as a model, e.g. to predict with it. */
export async function loadModel(dir: string): Promise<tf.LayersModel> {
  try {
    return await tf.loadLayersModel(new FileSystemIOHandler(dir), { strict: true });
  } catch (err) {
    if (err instanceof GraftError) throw err;
    // The files are intact (verified above) but describe no network tfjs can build with these weights.
    throw corruptCheckpoint(dir, MODEL_FILE, `does not describe a model TensorFlow.js can load (${(err as Error).message})`, SOURCE_PARAM);
  }
}

/**
 * Writes `model` as checkpoint `name`, all or nothing: files are staged under DATA_DIR/.tmp and
 * renamed into place. Throws ConflictError 'checkpoint_exists' if the name is taken.
 */
export async function saveCheckpoint(layout: DataLayout, name: string, model: tf.LayersModel, input: ManifestInput): Promise<CheckpointManifest> {
  const finalDir = layout.checkpointDir(name);
  const base: Omit<CheckpointManifest, 'files'> = { formatVersion: MANIFEST_FORMAT_VERSION, name, createdAt: new Date().toISOString(), ...input, layers: layerTable(model) };
  let files: Record<string, CheckpointFileEntry> = {};
  await layout.writeDirAtomically(finalDir, async (staging) => {
    await model.save(new FileSystemIOHandler(staging));
    files = await describeFiles(staging);
    const manifest: CheckpointManifest = { ...base, files };
    const problem = manifestProblem(manifest);
    if (problem) throw new Error(`saveCheckpoint: refusing to write a manifest that readers would reject ${problem}`);
    await writeFileDurably(path.join(staging, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  });
  return { ...base, files };
}

// ---------------------------------------------------------------------------------------------

interface VerifiedFiles {
  modelJson: ModelJson;
  manifest: CheckpointManifest | null;
  specs: WeightSpec[];
  /** All shards of all groups, concatenated in weightsManifest order (what specs index into). */
  weightData: ArrayBuffer;
}

/**
 * Reads a checkpoint folder and checks it end to end: manifest.json (when present) vouches for
 * the size and sha256 of every file, model.json parses and names only files of this folder, and
 * each group's shards hold exactly the bytes its weight specs need.
 */
async function readVerified(dir: string): Promise<VerifiedFiles> {
  const stat = await fs.stat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return null;
    throw err;
  });
  if (!stat?.isDirectory()) {
    throw new NotFoundError('checkpoint_not_found', `There is no checkpoint "${path.basename(dir)}"; GET /v1/checkpoints lists them.`, SOURCE_PARAM);
  }
  const files = new CheckpointFiles(dir);
  const manifestBytes = await files.readOptional(MANIFEST_FILE);
  const manifest = manifestBytes && parseManifest(dir, manifestBytes, SOURCE_PARAM);
  if (manifest) {
    for (const [file, entry] of Object.entries(manifest.files)) verifyFile(dir, file, await files.read(file), entry);
  }
  const modelJson = parseModelJson(dir, await files.read(MODEL_FILE), SOURCE_PARAM);
  const groups: Buffer[] = [];
  for (const [g, group] of modelJson.weightsManifest.entries()) {
    if (manifest) {
      const unlisted = [MODEL_FILE, ...group.paths].find((f) => !(f in manifest.files));
      if (unlisted) throw corruptCheckpoint(dir, unlisted, `is not listed in ${MANIFEST_FILE}, so it cannot be verified`, SOURCE_PARAM);
    }
    const shards = await Promise.all(group.paths.map((p) => files.read(p)));
    const held = shards.reduce((sum, b) => sum + b.length, 0);
    const needed = group.weights.reduce((sum, s) => sum + weightSpecBytes(s), 0);
    if (held !== needed) {
      const what = group.paths.length ? group.paths.join(', ') : 'no weight file';
      const verdict = held < needed ? 'truncated' : `${held - needed} bytes too long`;
      throw corruptCheckpoint(dir, MODEL_FILE, `weight group ${g + 1}: ${what} hold ${held} bytes but its ${group.weights.length} weights need ${needed} (${verdict})`, SOURCE_PARAM);
    }
    groups.push(...shards);
  }
  return { modelJson, manifest, specs: allWeightSpecs(modelJson), weightData: concat(groups) };
}

/** Reads each file of one checkpoint once (the manifest check and the loader share the bytes). */
class CheckpointFiles {
  private readonly cache = new Map<string, Buffer>();
  constructor(private readonly dir: string) {}

  async read(file: string): Promise<Buffer> {
    const bytes = await this.readOptional(file);
    if (!bytes) throw corruptCheckpoint(this.dir, file, 'is missing', SOURCE_PARAM);
    return bytes;
  }

  async readOptional(file: string): Promise<Buffer | null> {
    const cached = this.cache.get(file);
    if (cached) return cached;
    try {
      const bytes = await fs.readFile(path.join(this.dir, file));
      this.cache.set(file, bytes);
      return bytes;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      if (code === 'EISDIR') throw corruptCheckpoint(this.dir, file, 'is a folder, not a file', SOURCE_PARAM);
      throw err;
    }
  }
}

function verifyFile(dir: string, file: string, bytes: Buffer, expected: CheckpointFileEntry): void {
  if (bytes.length !== expected.bytes) {
    throw corruptCheckpoint(dir, file, `is ${bytes.length} bytes but ${MANIFEST_FILE} says ${expected.bytes}`, SOURCE_PARAM);
  }
  const actual = sha256(bytes);
  if (actual !== expected.sha256) {
    throw corruptCheckpoint(dir, file, `has sha256 ${actual} but ${MANIFEST_FILE} says ${expected.sha256}`, SOURCE_PARAM);
  }
}

function decodeWeight(spec: WeightSpec, bytes: ArrayBuffer): DecodedWeight {
  const shape = [...spec.shape];
  if (!spec.quantization) {
    // Plain weights are their own typed array: no round trip through the backend.
    return { shape, dtype: spec.dtype, values: spec.dtype === 'int32' ? new Int32Array(bytes) : new Float32Array(bytes) };
  }
  // Dequantization (uint8/uint16 affine, float16) is tfjs's; it yields a tensor we read and release.
  const tensor = tf.io.decodeWeights(bytes, [spec as tf.io.WeightsManifestEntry])[spec.name];
  try {
    return { shape, dtype: spec.dtype, values: tensor.dataSync() as Float32Array | Int32Array };
  } finally {
    tensor.dispose();
  }
}

/** The layer table for the manifest, from the live model (so output shapes are known). */
function layerTable(model: tf.LayersModel): LayerSummary[] {
  return model.layers.map((layer) => ({
    name: layer.name,
    className: layer.getClassName(),
    outputShape: outputShapeOf(layer),
    params: layer.countParams(),
    trainable: layer.trainable,
    // Variables always have concrete shapes; tfjs types them like symbolic ones.
    weights: layer.weights.map((w) => ({ name: w.originalName, shape: [...(w.shape as number[])] })),
  }));
}

function outputShapeOf(layer: tf.layers.Layer): LayerSummary['outputShape'] {
  try {
    return layer.outputShape as LayerSummary['outputShape'];
  } catch {
    return null; // a layer applied to inputs of different shapes has no single output shape
  }
}

/** sha256 and size of every file written so far (all of the checkpoint but manifest.json). */
async function describeFiles(dir: string): Promise<Record<string, CheckpointFileEntry>> {
  const names = (await fs.readdir(dir)).sort();
  const files: Record<string, CheckpointFileEntry> = {};
  for (const name of names) {
    const bytes = await fs.readFile(path.join(dir, name));
    files[name] = { sha256: sha256(bytes), bytes: bytes.length };
  }
  return files;
}

/** Written and fsynced before the folder is renamed, so a power cut cannot publish empty files. */
async function writeFileDurably(file: string, data: Uint8Array | string): Promise<void> {
  const handle = await fs.open(file, 'wx');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function concat(buffers: Buffer[]): ArrayBuffer {
  const out = new Uint8Array(buffers.reduce((sum, b) => sum + b.length, 0));
  let offset = 0;
  for (const b of buffers) {
    out.set(b, offset);
    offset += b.length;
  }
  return out.buffer;
}

/**
 * Re-writes the checkpoint folder `dir` (e.g. an upload) as checkpoint `name`: verified and built
 * by loadModel (topology loads, every weight has the bytes its spec says, hashes match when a
 * manifest exists), then saved with a fresh manifest. The upload is its own author (`jobType:
 * "upload"`, its own id): an uploaded manifest's identity is kept as data under `lineage`, never
 * as identity, so it can never pass for the output of a job.
 */
export async function importCheckpoint(layout: DataLayout, name: string, dir: string, uploadId: string): Promise<CheckpointManifest> {
  let previous: CheckpointManifest | null;
  let model: tf.LayersModel;
  try {
    previous = await fs.readFile(path.join(dir, MANIFEST_FILE)).then((b) => parseManifest(dir, b, null), () => null);
    model = await loadModel(dir);
  } catch (err) {
    // Here the checkpoint is the uploaded file, not a job's source.
    if (err instanceof GraftError) throw new GraftError(err.code, err.message, { param: UPLOAD_PARAM, statusCode: err.statusCode, details: err.details });
    throw err;
  }
  try {
    const inputShape = model.inputs[0]?.shape.slice(1);
    const { formatVersion: _v, name: prevName, createdAt: prevCreated, layers: _l, files: _f, jobId: prevJob, jobType: prevType, ...data } = previous ?? ({} as Partial<CheckpointManifest>);
    const input = {
      ...(previous ? data : {}),
      ...(inputShape?.every((d) => typeof d === 'number') ? { inputShape: inputShape as number[] } : {}),
      jobId: uploadId,
      jobType: 'upload' as const,
      ...(previous ? { lineage: { jobId: prevJob, jobType: prevType, name: prevName, createdAt: prevCreated } } : {}),
    } as ManifestInput;
    return await saveCheckpoint(layout, name, model, input);
  } finally {
    model.dispose();
  }
}
