import path from 'node:path';
import { Type, type Static, type TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { UnprocessableError } from '../../errors';
import { CheckpointManifestSchema, MANIFEST_FILE, MANIFEST_FORMAT_VERSION, MODEL_FILE, type CheckpointManifest } from './manifest';

/**
 * model.json and manifest.json parsing without TensorFlow, shared by the API's catalog and the
 * worker's checkpoint-io (which adds writing, hash verification and weight decoding).
 */

/** Files a checkpoint may reference: one path segment, so nothing can point outside its folder. */
const CHECKPOINT_FILE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Bytes per stored value for the dtypes graft reads (tfjs-core's DTYPE_VALUE_SIZE_MAP). */
const BYTES_PER_VALUE = { float32: 4, int32: 4, float16: 2, uint16: 2, uint8: 1 } as const;

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

