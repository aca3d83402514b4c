import { Type, type Static } from 'typebox';
import { NAME_PATTERN, REF_PATTERN } from '../storage/names';
import { AugmentSchema, PreprocessSpecSchema } from './preprocess';
import { HEAD_FIELDS, HEAD_LAYER_TYPES, HEAD_TYPES_DESCRIPTION } from './heads';

/**
 * The job spec as one TypeBox schema. It drives route validation, the OpenAPI
 * document and the worker's re-check. Every object rejects unknown fields: a typo such as
 * `"epoch": 3` must fail loudly instead of silently training with the default.
 */

export const LAYER_NAME_PATTERN = '^[A-Za-z][A-Za-z0-9_.-]{0,127}$';
export const MAX_REGEX_LENGTH = 256;

const strict = { additionalProperties: false } as const;

const Name = (description: string) => Type.String({ pattern: NAME_PATTERN, description });
/** A dataset or source checkpoint: `<name>` of your tenant, or `public/<name>` from the shared namespace. */
const Ref = (description: string) => Type.String({ pattern: REF_PATTERN, description });
const LayerName = Type.String({ pattern: LAYER_NAME_PATTERN, description: 'A layer name.' });
const Regex = (description: string) => Type.String({ minLength: 1, maxLength: MAX_REGEX_LENGTH, description });

export { ACTIVATIONS, HEAD_LAYER_TYPES } from './heads';
export const ARCHITECTURES = ['conv-autoencoder', 'conv-classifier'] as const;
export const OPTIMIZERS = ['adam', 'sgd', 'momentum', 'rmsprop', 'adagrad'] as const;

/** One flat object for every head type: the fields come from the registry in src/spec/heads/. */
export const HeadLayerSchema = Type.Object(
  {
    type: Type.Enum([...HEAD_LAYER_TYPES], { description: HEAD_TYPES_DESCRIPTION }),
    name: Type.Optional(Type.String({ pattern: LAYER_NAME_PATTERN, description: 'Layer name (default head_<index>_<type>); must not clash with a kept source layer.' })),
    ...HEAD_FIELDS,
  },
  { ...strict, description: 'A layer appended after `model.cut`.' },
);

export const ArchitectureOptionsSchema = Type.Object(
  {
    inputShape: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 4096 }), { minItems: 3, maxItems: 3, description: '[height, width, channels]; default: the dataset\'s shape.' })),
    filters: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 1024 }), { minItems: 1, maxItems: 4, description: 'Filters per encoder conv (default [16, 32]); layers are enc_conv1, enc_conv2, ...' })),
    kernelSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 11, description: 'Square kernel size of every conv (default 5).' })),
    bottleneck: Type.Optional(Type.Integer({ minimum: 0, maximum: 65536, description: 'conv-autoencoder: units of the dense code layer enc_code (default 64; 0 = none).' })),
    units: Type.Optional(Type.Integer({ minimum: 1, maximum: 65536, description: 'conv-classifier: units of the hidden dense layer before the output (default 0 = none).' })),
  },
  { ...strict, description: 'Options of a built-in architecture.' },
);

export const JobSpecSchema = Type.Object(
  {
    type: Type.Enum(['pretrain', 'transfer'], {
      description: '`transfer` restores weights from `source.checkpoint`; `pretrain` builds a network from scratch (`model.architecture` or `model.topology`).',
    }),
    source: Type.Optional(
      Type.Object(
        {
          checkpoint: Ref('Source checkpoint: `<name>` (yours) or `public/<name>` (shared).'),
          restore: Type.Optional(Regex('Regex over source weight names `<layer>/<weight>` selecting what to restore (default: every weight).')),
        },
        { ...strict, description: 'transfer only: where restored weights come from.' },
      ),
    ),
    freeze: Type.Optional(
      Type.Union([Regex('Regex over layer names.'), Type.Array(LayerName, { maxItems: 1024, uniqueItems: true })], {
        description: 'Layers whose weights stay fixed: a regex over layer names or a list of names. A frozen BatchNormalization runs in inference mode.',
      }),
    ),
    model: Type.Optional(
      Type.Object(
        {
          architecture: Type.Optional(Type.Enum([...ARCHITECTURES], { description: 'pretrain: a built-in network.' })),
          options: Type.Optional(ArchitectureOptionsSchema),
          cut: Type.Optional(Type.String({ pattern: LAYER_NAME_PATTERN, description: 'transfer: keep the source layers up to and including this one.' })),
          head: Type.Optional(Type.Array(HeadLayerSchema, { minItems: 1, maxItems: 32, description: 'Layers appended after `cut` (or after the last kept layer).' })),
          topology: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'A Keras / TensorFlow.js model JSON (`modelTopology` or the model config) for full control.' })),
        },
        { ...strict, description: 'The target network. Without it a transfer job keeps the source topology.' },
      ),
    ),
    dataset: Type.Object(
      {
        name: Ref('Dataset: `<name>` (yours) or `public/<name>` (shared).'),
        validationSplit: Type.Optional(Type.Number({ minimum: 0, maximum: 0.5, description: 'Fraction of the training split held out (stratified, seeded); default 0.1.' })),
        limit: Type.Optional(Type.Integer({ minimum: 1, description: 'Use at most this many training samples (a seeded stratified subset), e.g. to study small data.' })),
        preprocess: Type.Optional(PreprocessSpecSchema),
      },
      strict,
    ),
    training: Type.Optional(
      Type.Object(
        {
          epochs: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, description: 'default 10' })),
          batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 8192, description: 'default 32' })),
          optimizer: Type.Optional(Type.Enum([...OPTIMIZERS], { description: 'default adam' })),
          learningRate: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 10, description: 'default 0.001' })),
          seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647, description: 'Seeds initialisation, split and shuffling (default 0).' })),
          lrMultipliers: Type.Optional(
            Type.Record(Type.String({ minLength: 1, maxLength: MAX_REGEX_LENGTH }), Type.Number({ minimum: 0, maximum: 100 }), {
              description: 'Regex over layer names → learning-rate multiplier (first match wins), e.g. {"^enc_": 0.1}. Each group gets its own optimizer.',
            }),
          ),
          earlyStopping: Type.Optional(
            Type.Object(
              {
                patience: Type.Integer({ minimum: 1, maximum: 1000, description: 'Epochs without validation-loss improvement before stopping.' }),
                minDelta: Type.Optional(Type.Number({ minimum: 0, description: 'Smallest improvement that counts (default 0).' })),
              },
              strict,
            ),
          ),
          maxRuntimeSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 24 * 3600, description: 'Fail the job with `timeout` past this training time.' })),
          augment: Type.Optional(AugmentSchema),
        },
        strict,
      ),
    ),
    output: Type.Object(
      {
        checkpoint: Name('Name of the checkpoint to write, in your tenant; must not exist yet.'),
        select: Type.Optional(Type.Enum(['last', 'best'], { description: '`best` keeps the weights of the epoch with the lowest validation loss (default last).' })),
      },
      strict,
    ),
  },
  { ...strict, description: 'A transfer-learning or pretraining job.' },
);

export type JobSpec = Static<typeof JobSpecSchema>;

/** Jobs that use a trained checkpoint instead of training one (issue 12). */
export const USE_JOB_TYPES = ['evaluate', 'predict'] as const;
export const DEFAULT_MISTAKES = 20;
export const MAX_MISTAKES = 1000;
export const DEFAULT_PREDICT_TOP = 5;

export const UseJobSpecSchema = Type.Object(
  {
    type: Type.Enum([...USE_JOB_TYPES], {
      description: '`evaluate`: metrics of `source.checkpoint` on a dataset split (loss, accuracy, per-class accuracy, confusion matrix, most confident mistakes). `predict`: its predictions for every sample of the split, as a JSONL file (GET /v1/jobs/{id}/output).',
    }),
    source: Type.Object({ checkpoint: Name('The checkpoint to evaluate or predict with.') }, strict),
    dataset: Type.Object(
      {
        name: Name('Dataset under datasets/ (IDX or image folders; an uploaded folder of images is one).'),
        split: Type.Optional(Type.Enum(['test', 'train'], { description: 'default: test, or train for a dataset with one split (a folder of class folders)' })),
      },
      strict,
    ),
    mistakes: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_MISTAKES, description: `evaluate: how many of the most confident mistakes to list (default ${DEFAULT_MISTAKES}).` })),
    top: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: `predict: classes listed per line, most probable first (default ${DEFAULT_PREDICT_TOP}).` })),
  },
  { ...strict, description: 'A job that uses a trained checkpoint: evaluation or batch prediction.' },
);
export type UseJobSpec = Static<typeof UseJobSpecSchema>;
export type AnyJobSpec = JobSpec | UseJobSpec;

/**
 * The body of POST /v1/jobs: a use job (`type` evaluate or predict) or a training job. `if/then/else`
 * rather than a union, so a training spec's errors stay the precise ones of its own schema
 * (a union would only say that no branch matched).
 */
export const SubmittedSpecSchema = Type.Unsafe<AnyJobSpec>({
  description: 'A training job (`pretrain`, `transfer`), or a job that uses a checkpoint (`evaluate`, `predict`).',
  if: { type: 'object', properties: { type: { enum: [...USE_JOB_TYPES] } }, required: ['type'] },
  then: UseJobSpecSchema,
  else: JobSpecSchema,
});

/** The spec as stored on a job record (responses). */
export const AnyJobSpecSchema = Type.Union([JobSpecSchema, UseJobSpecSchema]);

export function isUseJob(spec: AnyJobSpec): spec is UseJobSpec {
  return (USE_JOB_TYPES as readonly string[]).includes(spec.type);
}

/** The checkpoint name a job reserves and writes; '' for a job that writes none. */
export function outputOf(spec: AnyJobSpec | undefined): string {
  if (!spec || isUseJob(spec)) return '';
  return spec.output?.checkpoint ?? '';
}
export type HeadLayerSpec = Static<typeof HeadLayerSchema>;
export type ArchitectureOptions = Static<typeof ArchitectureOptionsSchema>;

export const TRAINING_DEFAULTS = { epochs: 10, batchSize: 32, optimizer: 'adam', learningRate: 0.001, seed: 0 } as const;
export const DEFAULT_VALIDATION_SPLIT = 0.1;
export const DEFAULT_OUTPUT_SELECT = 'last';

type TrainingSpec = NonNullable<JobSpec['training']>;
/** `training` with every defaulted field present. */
export type ResolvedTraining = TrainingSpec & { [K in keyof typeof TRAINING_DEFAULTS]-?: NonNullable<TrainingSpec[K]> };

/** The spec's training settings with TRAINING_DEFAULTS written in. */
export function resolveTraining(spec: JobSpec): ResolvedTraining {
  return { ...TRAINING_DEFAULTS, ...spec.training } as ResolvedTraining;
}

/** The spec as it will run: defaults written in, so the job object says exactly what trained. */
export function withDefaults(spec: JobSpec): JobSpec {
  return {
    ...spec,
    ...(spec.source ? { source: { restore: '.*', ...spec.source } } : {}),
    dataset: { validationSplit: DEFAULT_VALIDATION_SPLIT, ...spec.dataset },
    training: resolveTraining(spec),
    output: { select: DEFAULT_OUTPUT_SELECT, ...spec.output },
  };
}
