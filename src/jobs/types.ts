import { Type, type Static } from 'typebox';
import { AnyJobSpecSchema } from '../spec/schema';

/** graft's own view of a job (the REST contract), independent of BullMQ's states and retention. */
export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

/** What GraftError.toJSON produces: a failed job stores it, and the API wraps it as `{ error }` (src/api/schemas/errors.ts). */
export const ErrorBodySchema = Type.Object({
  code: Type.String({ description: 'Stable snake_case code.' }),
  message: Type.String({ description: 'What went wrong and what to do about it.' }),
  param: Nullable(Type.String({ description: 'JSON pointer to the offending field.' })),
  details: Type.Optional(Type.Unknown()),
});

export const ProgressSchema = Type.Object({
  phase: Type.Optional(Type.String({ description: 'loading | building | caching | training | evaluating | saving' })),
  epoch: Type.Integer(),
  epochs: Type.Integer(),
  batch: Type.Integer(),
  batches: Type.Integer(),
  loss: Nullable(Type.Number()),
  accuracy: Nullable(Type.Number()),
  valLoss: Nullable(Type.Number()),
  valAccuracy: Nullable(Type.Number()),
  samplesPerSecond: Type.Optional(Nullable(Type.Number())),
  updatedAt: Type.Optional(Type.String()),
});

const MetricSetSchema = Type.Object({
  loss: Type.Number(),
  accuracy: Type.Optional(Nullable(Type.Number())),
  perClassAccuracy: Type.Optional(Type.Record(Type.String(), Nullable(Type.Number()))),
  confusionMatrix: Type.Optional(Nullable(Type.Array(Type.Array(Type.Integer()), { description: 'confusionMatrix[true][predicted]; null above CONFUSION_MATRIX_MAX_CLASSES classes.' }))),
  samples: Type.Optional(Type.Integer()),
});

export const JobResultSchema = Type.Object({
  checkpoint: Type.String(),
  backend: Type.String({ description: 'tensorflow | wasm | cpu' }),
  metrics: Type.Object({
    train: Type.Optional(MetricSetSchema),
    validation: Type.Optional(Nullable(MetricSetSchema)),
    test: Type.Optional(Nullable(MetricSetSchema)),
  }),
  epochsRun: Type.Optional(Type.Integer()),
  restored: Type.Optional(Type.Array(Type.String())),
  skipped: Type.Optional(Type.Array(Type.String())),
  frozen: Type.Optional(Type.Array(Type.String())),
  featureCache: Type.Optional(Type.Boolean()),
  trainingSeconds: Type.Optional(Type.Number()),
  mistakes: Type.Optional(
    Type.Array(
      Type.Object({
        index: Type.Integer({ description: 'Position of the sample in the split (IDX order, or the sorted files of image folders).' }),
        file: Type.Optional(Type.String({ description: 'Image folders: the file, relative to the dataset.' })),
        label: Type.String({ description: 'The true class.' }),
        predicted: Type.String(),
        probability: Type.Number({ description: 'The probability the model gave its (wrong) prediction.' }),
      }),
      { description: 'evaluate jobs: the most confident mistakes, most confident first.' },
    ),
  ),
  output: Type.Optional(
    Type.Object(
      { lines: Type.Integer(), bytes: Type.Integer(), accuracy: Nullable(Type.Number({ description: 'Share of lines whose prediction is the true label, when the split has labels.' })) },
      { description: 'predict jobs: the JSONL file GET /v1/jobs/{id}/output streams.' },
    ),
  ),
});

export const JobSchema = Type.Object({
  id: Type.String(),
  tenant: Type.String({ description: 'The tenant that owns the job.' }),
  type: Type.Enum(['pretrain', 'transfer', 'evaluate', 'predict']),
  status: Type.Enum([...JOB_STATUSES]),
  createdAt: Type.String({ format: 'date-time' }),
  startedAt: Nullable(Type.String({ format: 'date-time' })),
  finishedAt: Nullable(Type.String({ format: 'date-time' })),
  attempts: Type.Integer({ description: 'Times a worker has started this job.' }),
  worker: Type.Optional(Nullable(Type.String({ description: 'The worker process (host:pid) that ran the latest attempt.' }))),
  spec: AnyJobSpecSchema,
  progress: Nullable(ProgressSchema),
  result: Nullable(JobResultSchema),
  error: Nullable(ErrorBodySchema),
});

export type Job = Static<typeof JobSchema>;
export type JobProgress = Static<typeof ProgressSchema>;
export type JobResult = Static<typeof JobResultSchema>;
export type JobError = Static<typeof ErrorBodySchema>;
