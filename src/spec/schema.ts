import { Type, type Static } from 'typebox';
import { NAME_PATTERN, REF_PATTERN } from '../storage/names';
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
