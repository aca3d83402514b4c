import { Type, type Static } from 'typebox';
import { PreprocessSchema, type Preprocess } from '../../spec/preprocess';

/**
 * manifest.json: the lineage and integrity record graft writes beside every checkpoint it
 * makes (written by workers, read by both sides). A storage format, so its schema lives here;
 * the API's response schemas embed it (src/api/schemas/checkpoints.ts).
 *
 *   checkpoints/<name>/model.json      tfjs layers format: modelTopology + weightsManifest
 *   checkpoints/<name>/*.bin           weight shards named by weightsManifest[].paths
 *   checkpoints/<name>/manifest.json   lineage, layer table, sha256 + size of every other file
 */

export const MODEL_FILE = 'model.json';
export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT_VERSION = 1;

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

export type { Preprocess };

/** The checkpoint's record, or the one every checkpoint written before the record existed had. */
export function preprocessOf(manifest: Pick<CheckpointManifest, 'preprocess' | 'inputShape'> | null): Preprocess {
  if (manifest?.preprocess) return manifest.preprocess;
  return { resize: 'stretch', channels: manifest?.inputShape?.[2] === 3 ? 3 : 1, scaling: 'unit' };
}

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
    preprocess: Type.Optional(PreprocessSchema),
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
    lineage: Type.Optional(
      Type.Object(
        {
          jobId: Type.Optional(Type.String()),
          jobType: Type.Optional(Type.String()),
          name: Type.Optional(Type.String()),
          createdAt: Type.Optional(Type.String()),
        },
        { description: 'For an uploaded checkpoint: the identity its own manifest claimed (kept as data, never trusted as this checkpoint\'s identity).' },
      ),
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
