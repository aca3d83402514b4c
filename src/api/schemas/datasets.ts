import { Type, type Static } from 'typebox';
import { DATASET_FORMAT_NAMES, type DatasetDescription, type DatasetSummary } from '../../storage/datasets';
import { NAME_PATTERN } from '../../storage/names';

/** HTTP bodies of the dataset routes (validation and the OpenAPI document). */

const ImageShapeSchema = Type.Array(Type.Integer({ minimum: 1 }), { minItems: 3, maxItems: 3, description: '[height, width, channels]' });

const SplitSchema = Type.Object(
  {
    count: Type.Integer({ minimum: 0, description: 'Samples in the split.' }),
    perClass: Type.Array(Type.Integer({ minimum: 0 }), { description: 'Samples per class, in the order of `classes`.' }),
  },
  { additionalProperties: false },
);

/** A listed dataset's error: the shared error body without `details`, closed to extra fields. */
const ErrorBodySchema = Type.Object(
  { code: Type.String(), message: Type.String(), param: Type.Union([Type.String(), Type.Null()]) },
  { additionalProperties: false },
);

// The description text is part of the published OpenAPI document, kept as it was.
const FormatSchema = Type.Enum([...DATASET_FORMAT_NAMES], { description: 'Detected from the files (see the volume layout in the README).' });
const InputShapeDescription =
  'idx: the stored [rows, cols, channels]. image-folder: the first image\'s size and channels (1 if grayscale, else 3; alpha ' +
  'is dropped), null if that image cannot be read; training resizes every image to the model input.';

const TenantField = Type.String({ description: 'The namespace the dataset lives in: your tenant, or `public` (shared, read-only).' });

export const DatasetDescriptionSchema = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN }),
    tenant: TenantField,
    format: FormatSchema,
    inputShape: Type.Union([ImageShapeSchema, Type.Null()], { description: InputShapeDescription }),
    classes: Type.Array(Type.String(), {
      description: 'Class names; a label is an index into this list. idx: "0".."<largest label>"; image-folder: the sorted class folder names.',
    }),
    numClasses: Type.Integer({ minimum: 1 }),
    splits: Type.Object({ train: SplitSchema, test: Type.Optional(SplitSchema) }, { additionalProperties: false }),
    classBalance: Type.Optional(Type.Record(Type.String(), Type.Integer({ minimum: 0 }), { description: 'Training samples per class name.' })),
    warnings: Type.Optional(Type.Array(Type.String(), { description: 'E.g. heavy class imbalance (largest class more than 10x the smallest).' })),
    sizeBytes: Type.Integer({ minimum: 0, description: 'Bytes of all files in the dataset folder.' }),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false, description: 'A dataset under tenants/<tenant>/datasets/<name>/.' },
);

export const DatasetSummarySchema = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN }),
    tenant: TenantField,
    format: Type.Union([FormatSchema, Type.Null()]),
    inputShape: Type.Union([ImageShapeSchema, Type.Null()], { description: InputShapeDescription }),
    numClasses: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
    trainCount: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
    testCount: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'null when the dataset has no test split.' }),
    sizeBytes: Type.Integer({ minimum: 0 }),
    createdAt: Type.String({ format: 'date-time' }),
    error: Type.Union([ErrorBodySchema, Type.Null()], {
      description: 'Why the dataset cannot be used (e.g. dataset_invalid); the other fields that need a valid dataset are then null.',
    }),
  },
  { additionalProperties: false },
);

// The catalog's types and these schemas describe the same bodies: the build fails if they drift.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type WithShape<T> = Omit<T, 'inputShape'> & { inputShape: number[] | null };
const sameDescription: Same<WithShape<Static<typeof DatasetDescriptionSchema>>, WithShape<DatasetDescription>> = true;
const sameSummary: Same<WithShape<Static<typeof DatasetSummarySchema>>, WithShape<DatasetSummary>> = true;
void [sameDescription, sameSummary];
