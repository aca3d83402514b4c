import { Type, type Static } from 'typebox';
import { CheckpointManifestSchema, LayerSummarySchema, TASKS, type CheckpointDescription, type CheckpointSummary } from '../../storage/checkpoints';

/** HTTP bodies of the checkpoint routes; the manifest and layer table are storage formats they embed. */

const InputShapeSchema = Type.Union([Type.Array(Type.Integer({ minimum: 1 })), Type.Null()], { description: 'One sample, without the batch dimension.' });

const TenantField = Type.String({ description: 'The namespace the checkpoint lives in: your tenant, or `public` (shared, read-only).' });

export const CheckpointSummarySchema = Type.Object({
  name: Type.String(),
  tenant: TenantField,
  createdAt: Type.String({ format: 'date-time', description: 'From the manifest, else the folder time.' }),
  jobId: Type.Union([Type.String(), Type.Null()]),
  task: Type.Union([Type.Enum([...TASKS]), Type.Null()]),
  params: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'null when model.json cannot be read.' }),
  inputShape: InputShapeSchema,
  sizeBytes: Type.Integer({ minimum: 0 }),
});

export const CheckpointDescriptionSchema = Type.Object({
  name: Type.String(),
  tenant: TenantField,
  createdAt: Type.String({ format: 'date-time' }),
  sizeBytes: Type.Integer({ minimum: 0 }),
  inputShape: InputShapeSchema,
  layers: Type.Array(LayerSummarySchema),
  manifest: Type.Union([CheckpointManifestSchema, Type.Null()], { description: 'null for a checkpoint without manifest.json.' }),
});

// The catalog's types and these schemas describe the same bodies: the build fails if they drift.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameSummary: Same<Static<typeof CheckpointSummarySchema>, CheckpointSummary> = true;
const sameDescription: Same<Static<typeof CheckpointDescriptionSchema>, CheckpointDescription> = true;
void [sameSummary, sameDescription];
