import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Type, type Static, type TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { NotFoundError, UnprocessableError } from '../errors';
import type { DataLayout } from './layout';
import { isValidName } from './names';

/**
 * Checkpoints on the volume (DESIGN §3), seen without TensorFlow: the manifest format both sides
 * share, the checks of model.json that need no tensors, and the catalog the API serves.
 * Writing, hash verification and weight decoding live in workers/engine/checkpoint-io.ts.
 *
 *   checkpoints/<name>/model.json      tfjs layers format: modelTopology + weightsManifest
 *   checkpoints/<name>/*.bin           weight shards named by weightsManifest[].paths
 *   checkpoints/<name>/manifest.json   lineage, layer table, sha256 + size of every other file
 */

export const MODEL_FILE = 'model.json';
export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT_VERSION = 1;

/** Files a checkpoint may reference: one path segment, so nothing can point outside its folder. */
const CHECKPOINT_FILE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Bytes per stored value for the dtypes graft reads (tfjs-core's DTYPE_VALUE_SIZE_MAP). */
const BYTES_PER_VALUE = { float32: 4, int32: 4, float16: 2, uint16: 2, uint8: 1 } as const;
/** Nested layer configs deeper than this are not searched for layer names (guards the recursion). */
const MAX_TOPOLOGY_DEPTH = 64;
/** Row for weights whose `<layer>/` prefix names no layer of the topology. */
const UNKNOWN_CLASS = 'Unknown';
const INPUT_LAYER_CLASS = 'InputLayer';

// ---------------------------------------------------------------------------------------------
// Schemas: the manifest (written by workers, read by both sides) and the API's response bodies.

const DimSchema = Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'null = any size (the batch dimension).' });
const ShapeSchema = Type.Array(DimSchema);

export const WeightShapeSchema = Type.Object({
  name: Type.String({ description: '`<layer>/<weight>`, e.g. enc_conv1/kernel: what a restore regex matches.' }),
  shape: Type.Array(Type.Integer({ minimum: 0 })),
});

export const LayerSummarySchema = Type.Object({
  name: Type.String(),
  className: Type.String({ description: 'Keras/tfjs class, e.g. Conv2D, Dense, InputLayer.' }),
  outputShape: Type.Union([ShapeSchema, Type.Array(ShapeSchema), Type.Null()], {
    description: 'null when unknown (no manifest, or a layer shared between outputs of different shapes).',
  }),
  params: Type.Integer({ minimum: 0 }),
  trainable: Type.Boolean({ description: 'false for frozen layers.' }),
  weights: Type.Array(WeightShapeSchema),
});

const FileEntrySchema = Type.Object({
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  bytes: Type.Integer({ minimum: 0 }),
});

const SourceSchema = Type.Object({
  checkpoint: Type.String(),
  restored: Type.Array(Type.String(), { description: 'Weight names copied from the source.' }),
  skipped: Type.Array(Type.String(), { description: 'Source weights the restore regex did not select, or the target lacks.' }),
  mismatched: Type.Array(
    Type.Object({ name: Type.String(), sourceShape: Type.Array(Type.Integer()), targetShape: Type.Array(Type.Integer()) }),
  ),
});

export const JOB_TYPES = ['pretrain', 'transfer', 'upload'] as const;
export const TASKS = ['classification', 'reconstruction'] as const;

export const CheckpointManifestSchema = Type.Object(
  {
    formatVersion: Type.Literal(MANIFEST_FORMAT_VERSION),
    name: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    jobId: Type.String(),
    jobType: Type.Enum([...JOB_TYPES]),
    task: Type.Optional(Type.Enum([...TASKS])),
    inputShape: Type.Optional(Type.Array(Type.Integer({ minimum: 1 }), { description: 'One sample, without the batch dimension, e.g. [28, 28, 1].' })),
    labels: Type.Optional(Type.Array(Type.String(), { description: 'Class names, index = output unit.' })),
    spec: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'The job spec that produced this checkpoint.' })),
    source: Type.Optional(Type.Union([SourceSchema, Type.Null()])),
    frozen: Type.Optional(Type.Array(Type.String(), { description: 'Layers trained with trainable = false.' })),
    lrMultipliers: Type.Optional(Type.Record(Type.String(), Type.Number(), { description: 'Learning-rate multipliers as the job applied them.' })),
    backend: Type.Optional(Type.String({ description: 'tensorflow | wasm | cpu' })),
    metrics: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    history: Type.Optional(
      Type.Array(Type.Record(Type.String(), Type.Union([Type.Number(), Type.Null()])), { description: 'One entry per epoch (loss, accuracy, valLoss...); null = not a number.' }),
    ),
    layers: Type.Array(LayerSummarySchema),
    files: Type.Record(Type.String(), FileEntrySchema, { description: 'Every file of the checkpoint except manifest.json: relative path → sha256 and size.' }),
  },
  { description: 'manifest.json: lineage and integrity of a checkpoint, written once with it.' },
);

export type WeightShape = Static<typeof WeightShapeSchema>;
export type LayerSummary = Static<typeof LayerSummarySchema>;
export type CheckpointFileEntry = Static<typeof FileEntrySchema>;
export type CheckpointManifest = Static<typeof CheckpointManifestSchema>;
/** What the worker supplies; saveCheckpoint adds formatVersion, name, createdAt, layers and files. */
export type ManifestInput = Omit<CheckpointManifest, 'formatVersion' | 'name' | 'createdAt' | 'layers' | 'files'>;

const InputShapeSchema = Type.Union([Type.Array(Type.Integer({ minimum: 1 })), Type.Null()], { description: 'One sample, without the batch dimension.' });

export const CheckpointSummarySchema = Type.Object({
  name: Type.String(),
  createdAt: Type.String({ format: 'date-time', description: 'From the manifest, else the folder time.' }),
  jobId: Type.Union([Type.String(), Type.Null()]),
  task: Type.Union([Type.Enum([...TASKS]), Type.Null()]),
  params: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'null when model.json cannot be read.' }),
  inputShape: InputShapeSchema,
  sizeBytes: Type.Integer({ minimum: 0 }),
});

export const CheckpointDescriptionSchema = Type.Object({
  name: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  sizeBytes: Type.Integer({ minimum: 0 }),
  inputShape: InputShapeSchema,
  layers: Type.Array(LayerSummarySchema),
  manifest: Type.Union([CheckpointManifestSchema, Type.Null()], { description: 'null for a checkpoint without manifest.json.' }),
});

export type CheckpointSummary = Static<typeof CheckpointSummarySchema>;
export type CheckpointDescription = Static<typeof CheckpointDescriptionSchema>;

// ---------------------------------------------------------------------------------------------
// model.json and manifest.json parsing, shared with the worker's checkpoint-io.

const QuantizationSchema = Type.Object({
  dtype: Type.Enum(['uint8', 'uint16', 'float16']),
  min: Type.Optional(Type.Number()),
  scale: Type.Optional(Type.Number()),
});

const WeightSpecSchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  shape: Type.Array(Type.Integer({ minimum: 0 })),
  // Layers models only hold numeric weights; string/complex/bool tensors are refused up front.
  dtype: Type.Enum(['float32', 'int32']),
  group: Type.Optional(Type.String()),
  quantization: Type.Optional(QuantizationSchema),
});

/** The part of tfjs's ModelJSON that graft relies on; other fields (trainingConfig...) pass through. */
const ModelJsonSchema = Type.Object({
  format: Type.Optional(Type.String()),
  modelTopology: Type.Record(Type.String(), Type.Unknown()),
  weightsManifest: Type.Array(Type.Object({ paths: Type.Array(Type.String()), weights: Type.Array(WeightSpecSchema) })),
});

export type WeightSpec = Static<typeof WeightSpecSchema>;
export type ModelJson = Static<typeof ModelJsonSchema>;

/** The error for any inconsistency inside a checkpoint folder; the message names the file. */
export function corruptCheckpoint(dir: string, file: string, problem: string, param: string | null): UnprocessableError {
  return new UnprocessableError('checkpoint_corrupt', `Checkpoint "${path.basename(dir)}" is corrupt: ${file} ${problem}.`, param);
}

export function isCheckpointFileName(name: string): boolean {
  return CHECKPOINT_FILE_RE.test(name);
}

/** Bytes one weight occupies in its shards (quantized weights are stored in their quantized dtype). */
export function weightSpecBytes(spec: WeightSpec): number {
  const count = spec.shape.reduce((a, b) => a * b, 1);
  return count * BYTES_PER_VALUE[spec.quantization?.dtype ?? spec.dtype];
}

/** First schema violation as "at /path: message", or null when `value` matches. */
function schemaProblem(schema: TSchema, value: unknown): string | null {
  if (Value.Check(schema, value)) return null;
  const [first] = Value.Errors(schema, value);
  const allowed = (first.params as { allowedValues?: unknown[] } | undefined)?.allowedValues;
  return `at ${first.instancePath || '/'}: ${first.message}${allowed ? ` (${allowed.join(', ')})` : ''}`;
}

function parseJson(dir: string, file: string, bytes: Buffer, param: string | null): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw corruptCheckpoint(dir, file, `is not valid JSON (${(err as Error).message})`, param);
  }
}

/** Parses and checks model.json: structure, weight specs, shard paths. Sizes are checked by the reader. */
export function parseModelJson(dir: string, bytes: Buffer, param: string | null): ModelJson {
  const json = parseJson(dir, MODEL_FILE, bytes, param);
  const problem = schemaProblem(ModelJsonSchema, json);
  if (problem) throw corruptCheckpoint(dir, MODEL_FILE, `is not a TensorFlow.js layers model ${problem}`, param);
  const model = json as ModelJson;
  if (model.format !== undefined && model.format !== 'layers-model') {
    throw corruptCheckpoint(dir, MODEL_FILE, `has format "${model.format}"; graft reads "layers-model" only`, param);
  }
  const paths = new Set<string>();
  const names = new Set<string>();
  for (const group of model.weightsManifest) {
    for (const p of group.paths) {
      if (!isCheckpointFileName(p) || p === MODEL_FILE || p === MANIFEST_FILE) {
        throw corruptCheckpoint(dir, MODEL_FILE, `names the weight file ${JSON.stringify(p)}, which is not a plain file name of this folder`, param);
      }
      if (paths.has(p)) throw corruptCheckpoint(dir, MODEL_FILE, `lists the weight file ${p} twice`, param);
      paths.add(p);
    }
    for (const spec of group.weights) {
      if (names.has(spec.name)) throw corruptCheckpoint(dir, MODEL_FILE, `lists the weight ${spec.name} twice`, param);
      names.add(spec.name);
      const q = spec.quantization;
      if ((q?.dtype === 'uint8' || q?.dtype === 'uint16') && !(Number.isFinite(q.min) && Number.isFinite(q.scale))) {
        throw corruptCheckpoint(dir, MODEL_FILE, `quantizes ${spec.name} as ${q.dtype} without a finite min and scale`, param);
      }
      if (q?.dtype === 'float16' && spec.dtype !== 'float32') {
        throw corruptCheckpoint(dir, MODEL_FILE, `quantizes ${spec.name} (${spec.dtype}) as float16, which only float32 weights support`, param);
      }
    }
  }
  return model;
}

export function allWeightSpecs(model: ModelJson): WeightSpec[] {
  return model.weightsManifest.flatMap((g) => g.weights);
}

export function parseManifest(dir: string, bytes: Buffer, param: string | null): CheckpointManifest {
  const json = parseJson(dir, MANIFEST_FILE, bytes, param);
  const version = (json as { formatVersion?: unknown } | null)?.formatVersion;
  if (typeof version === 'number' && version !== MANIFEST_FORMAT_VERSION) {
    throw corruptCheckpoint(dir, MANIFEST_FILE, `has formatVersion ${version}; this graft reads version ${MANIFEST_FORMAT_VERSION}`, param);
  }
  const problem = schemaProblem(CheckpointManifestSchema, json);
  if (problem) throw corruptCheckpoint(dir, MANIFEST_FILE, `is not a graft manifest ${problem}`, param);
  const manifest = json as CheckpointManifest;
  for (const file of Object.keys(manifest.files)) {
    if (!isCheckpointFileName(file) || file === MANIFEST_FILE) {
      throw corruptCheckpoint(dir, MANIFEST_FILE, `lists ${JSON.stringify(file)}, which is not a file it may vouch for`, param);
    }
  }
  return manifest;
}

/** Problem of a manifest about to be written, or null; catches worker bugs before they become "corrupt" checkpoints. */
export function manifestProblem(manifest: CheckpointManifest): string | null {
  return schemaProblem(CheckpointManifestSchema, JSON.parse(JSON.stringify(manifest)));
}

// ---------------------------------------------------------------------------------------------
// Layer table and input shape from model.json alone (no manifest, no TensorFlow).

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

interface TopologyLayer {
  name: string;
  className: string;
  trainable: boolean;
  config: Json;
}

/** Keras-converted models wrap the model in `model_config`; tfjs's loader unwraps it the same way. */
function modelConfig(topology: Json): Json {
  return isObject(topology.model_config) ? topology.model_config : topology;
}

/** Top-level layers of a Sequential (`config.layers`, or `config` as a list in old Keras) or Functional model. */
function topologyLayers(topology: Json): TopologyLayer[] {
  const config = modelConfig(topology).config;
  const list = Array.isArray(config) ? config : isObject(config) && Array.isArray(config.layers) ? config.layers : [];
  return list.filter(isObject).flatMap((layer) => {
    const cfg = isObject(layer.config) ? layer.config : {};
    const name = typeof cfg.name === 'string' ? cfg.name : typeof layer.name === 'string' ? layer.name : null;
    if (name === null) return [];
    const className = typeof layer.class_name === 'string' ? layer.class_name : UNKNOWN_CLASS;
    // Configs omit `trainable` when true; InputLayers omit it but are never trainable.
    return [{ name, className, trainable: cfg.trainable !== false && className !== INPUT_LAYER_CLASS, config: cfg }];
  });
}

/** Names of layers nested in a layer's config (inner models, wrapped layers): their weights belong to it. */
function nestedLayerNames(node: unknown, into: Set<string>, depth = 0): void {
  if (depth > MAX_TOPOLOGY_DEPTH) return;
  if (Array.isArray(node)) {
    for (const item of node) nestedLayerNames(item, into, depth + 1);
    return;
  }
  if (!isObject(node)) return;
  if (typeof node.class_name === 'string' && isObject(node.config) && typeof node.config.name === 'string') into.add(node.config.name);
  for (const value of Object.values(node)) nestedLayerNames(value, into, depth + 1);
}

const layerOfWeight = (weightName: string): string => weightName.split('/')[0];
const paramsOf = (weights: WeightShape[]): number => weights.reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1), 0);

/**
 * The layer table of a checkpoint without manifest: names and classes from the topology, weights
 * grouped by their `<layer>/` prefix. Output shapes would need the model built, so they are null.
 */
export function deriveLayers(model: ModelJson): LayerSummary[] {
  const layers = topologyLayers(model.modelTopology);
  const owner = new Map<string, number>();
  layers.forEach((layer, i) => {
    const names = new Set([layer.name]);
    nestedLayerNames(layer.config, names);
    for (const n of names) if (!owner.has(n)) owner.set(n, i);
  });
  const grouped = layers.map(() => [] as WeightShape[]);
  const orphans = new Map<string, WeightShape[]>();
  for (const spec of allWeightSpecs(model)) {
    const weight = { name: spec.name, shape: [...spec.shape] };
    const prefix = layerOfWeight(spec.name);
    const i = owner.get(prefix);
    if (i !== undefined) grouped[i].push(weight);
    else orphans.set(prefix, [...(orphans.get(prefix) ?? []), weight]);
  }
  const rows: LayerSummary[] = layers.map((layer, i) => ({
    name: layer.name,
    className: layer.className,
    outputShape: null,
    params: paramsOf(grouped[i]),
    trainable: layer.trainable,
    weights: grouped[i],
  }));
  // Weights no layer claims are still listed, so the table accounts for every stored parameter.
  for (const [name, weights] of orphans) {
    rows.push({ name, className: UNKNOWN_CLASS, outputShape: null, params: paramsOf(weights), trainable: true, weights });
  }
  return rows;
}

/** Shape of one input sample from the topology's (first) input layer; null when not fully known. */
export function deriveInputShape(model: ModelJson): number[] | null {
  const topology = modelConfig(model.modelTopology);
  const layers = topologyLayers(topology);
  const inputLayers = isObject(topology.config) ? topology.config.input_layers : undefined;
  const firstInput = Array.isArray(inputLayers) && Array.isArray(inputLayers[0]) ? inputLayers[0][0] : undefined;
  const layer = layers.find((l) => l.name === firstInput) ?? layers[0];
  const shape = layer?.config.batch_input_shape ?? layer?.config.batchInputShape;
  if (!Array.isArray(shape) || shape.length < 2) return null;
  const dims = shape.slice(1);
  return dims.every((d) => Number.isInteger(d) && d > 0) ? (dims as number[]) : null;
}

// ---------------------------------------------------------------------------------------------
// The catalog the API serves. Cheap reads only: hashes are verified where weights are used.

export class CheckpointCatalog {
  constructor(private readonly layout: DataLayout) {}

  /** Whether the name is taken, even by a corrupt checkpoint. */
  async exists(name: string): Promise<boolean> {
    return isValidName(name) && isDirectory(this.layout.checkpointDir(name));
  }

  async list(): Promise<CheckpointSummary[]> {
    const entries = await fs.readdir(this.layout.checkpointsDir, { withFileTypes: true }).catch(ignoreMissing([]));
    const names = entries.filter((e) => e.isDirectory() && isValidName(e.name)).map((e) => e.name).sort();
    const summaries = await Promise.all(names.map((name) => this.summary(name)));
    return summaries.filter((s): s is CheckpointSummary => s !== null);
  }

  async describe(name: string): Promise<CheckpointDescription> {
    const dir = await this.folder(name);
    const [manifest, info] = await Promise.all([readManifest(dir), folderInfo(dir)]);
    const base = { name, createdAt: manifest?.createdAt ?? info.modifiedAt, sizeBytes: info.sizeBytes };
    if (manifest) return { ...base, inputShape: manifest.inputShape ?? null, layers: manifest.layers, manifest };
    const model = await readModelJson(dir);
    return { ...base, inputShape: deriveInputShape(model), layers: deriveLayers(model), manifest: null };
  }

  /** Weight names and shapes from model.json, for checking a restore regex at submission time. */
  async weightNames(name: string): Promise<WeightShape[]> {
    const model = await readModelJson(await this.folder(name));
    return allWeightSpecs(model).map((s) => ({ name: s.name, shape: [...s.shape] }));
  }

  /** Topology and weight shapes without values: what a dry run (POST /v1/plans) needs. */
  async structure(name: string): Promise<{ modelTopology: unknown; weights: WeightShape[] }> {
    const model = await readModelJson(await this.folder(name));
    return { modelTopology: model.modelTopology, weights: allWeightSpecs(model).map((s) => ({ name: s.name, shape: [...s.shape] })) };
  }

  private async folder(name: string): Promise<string> {
    if (!(await this.exists(name))) throw new NotFoundError('checkpoint_not_found', `There is no checkpoint "${name}"; GET /v1/checkpoints lists them.`);
    return this.layout.checkpointDir(name);
  }

  /** A checkpoint whose metadata cannot be read is still listed (its name is taken), with nulls. */
  private async summary(name: string): Promise<CheckpointSummary | null> {
    const dir = this.layout.checkpointDir(name);
    let info: FolderInfo;
    try {
      info = await folderInfo(dir);
    } catch (err) {
      if (isMissing(err)) return null; // removed since readdir
      throw err;
    }
    const summary: CheckpointSummary = { name, createdAt: info.modifiedAt, jobId: null, task: null, params: null, inputShape: null, sizeBytes: info.sizeBytes };
    try {
      const manifest = await readManifest(dir);
      if (manifest) {
        return {
          ...summary,
          createdAt: manifest.createdAt,
          jobId: manifest.jobId,
          task: manifest.task ?? null,
          params: manifest.layers.reduce((sum, l) => sum + l.params, 0),
          inputShape: manifest.inputShape ?? null,
        };
      }
      const model = await readModelJson(dir);
      return { ...summary, params: paramsOf(allWeightSpecs(model)), inputShape: deriveInputShape(model) };
    } catch (err) {
      if (err instanceof UnprocessableError) return summary;
      throw err;
    }
  }
}

interface FolderInfo {
  sizeBytes: number;
  modifiedAt: string;
}

async function folderInfo(dir: string): Promise<FolderInfo> {
  const [stat, entries] = await Promise.all([fs.stat(dir), fs.readdir(dir, { withFileTypes: true })]);
  const sizes = await Promise.all(entries.filter((e) => e.isFile()).map((e) => fs.stat(path.join(dir, e.name)).then((s) => s.size)));
  return { sizeBytes: sizes.reduce((a, b) => a + b, 0), modifiedAt: stat.mtime.toISOString() };
}

async function readManifest(dir: string): Promise<CheckpointManifest | null> {
  const bytes = await fs.readFile(path.join(dir, MANIFEST_FILE)).catch(ignoreMissing(null));
  return bytes && parseManifest(dir, bytes, null);
}

async function readModelJson(dir: string): Promise<ModelJson> {
  const bytes = await fs.readFile(path.join(dir, MODEL_FILE)).catch(ignoreMissing(null));
  if (!bytes) throw corruptCheckpoint(dir, MODEL_FILE, 'is missing', null);
  return parseModelJson(dir, bytes, null);
}

async function isDirectory(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isDirectory(), ignoreMissing(false));
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** A `.catch` handler that turns "no such file" into `fallback` and rethrows anything else. */
function ignoreMissing<T>(fallback: T): (err: unknown) => T {
  return (err) => {
    if (isMissing(err)) return fallback;
    throw err;
  };
}
