import { Type, type Static } from 'typebox';

/**
 * The dry-run plan of a job: what the engine would build (workers/engine/plan.ts produces it,
 * the API returns it from POST /v1/plans). One schema for both, so the route's response and the
 * engine's output cannot drift apart.
 */
export const PlanLayerSchema = Type.Object({
  name: Type.String(),
  className: Type.String(),
  outputShape: Type.Array(Type.Unknown(), { description: 'Without the batch dimension\'s size (null).' }),
  params: Type.Integer(),
  restored: Type.Boolean({ description: 'Its weights come from the source.' }),
  frozen: Type.Boolean(),
  lrMultiplier: Type.Union([Type.Number(), Type.Null()], { description: 'null for layers that do not train.' }),
});

export const JobPlanSchema = Type.Object({
  task: Type.Enum(['classification', 'reconstruction']),
  inputShape: Type.Array(Type.Integer()),
  layers: Type.Array(PlanLayerSchema),
  weights: Type.Object({
    restored: Type.Array(Type.String()),
    skipped: Type.Array(Type.String()),
    mismatched: Type.Array(Type.Object({ name: Type.String(), sourceShape: Type.Array(Type.Integer()), targetShape: Type.Array(Type.Integer()) })),
  }),
  params: Type.Object({ total: Type.Integer(), trainable: Type.Integer(), frozen: Type.Integer() }),
  featureCache: Type.Object({
    applies: Type.Boolean(),
    boundaryLayer: Type.Union([Type.String(), Type.Null()]),
    reason: Type.Optional(Type.String({ description: 'Why caching does not apply although the network has a frozen prefix (e.g. training.augment).' })),
  }),
});

export type PlanLayer = Static<typeof PlanLayerSchema>;
export type JobPlan = Static<typeof JobPlanSchema>;
