import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { GraftError, ValidationError } from '../../errors';
import type { PredictInput } from '../../inference/protocol';
import { LAYER_NAME_PATTERN } from '../../spec/schema';
import { NameParams } from '../schemas/common';
import { errorResponses } from '../schemas/errors';
import type { AppDeps } from '../services';

const DEFAULT_TOP = 5;
const MAX_TOP = 1000;

const Top = Type.Integer({ minimum: 1, maximum: MAX_TOP, description: `Classes listed per prediction, most probable first (default ${DEFAULT_TOP}).` });
const Layer = Type.String({ pattern: LAYER_NAME_PATTERN, description: "Return this layer's activations (an embedding) instead of the model's output." });

export const PredictJsonSchema = Type.Object(
  {
    instances: Type.Array(Type.Array(Type.Unknown()), {
      minItems: 1,
      description: 'Each instance a nested [height][width][channels] array, or a flat array of that many numbers, in the scale the model was trained on ([0, 1] for images).',
    }),
    top: Type.Optional(Top),
    layer: Type.Optional(Layer),
  },
  { additionalProperties: false },
);

const LabelProbability = Type.Object({ label: Type.String(), probability: Type.Number() });
export const PredictResponseSchema = Type.Union([
  Type.Object(
    {
      checkpoint: Type.String(),
      predictions: Type.Array(Type.Object({ label: Type.String(), probability: Type.Number(), top: Type.Array(LabelProbability) }), { description: 'One per instance, in order.' }),
    },
    { description: 'A classifier: each instance\'s most probable class and its top classes.' },
  ),
  Type.Object(
    {
      checkpoint: Type.String(),
      outputs: Type.Array(Type.Array(Type.Number()), { description: 'One per instance, in order: the output (or the layer\'s activations) flattened.' }),
      shape: Type.Array(Type.Integer(), { description: 'The shape of one instance\'s output before flattening.' }),
    },
    { description: 'Another model, or `layer`: raw outputs.' },
  ),
]);

/** POST /v1/checkpoints/{name}/predict: JSON arrays or multipart image files, answered by an inference process. */
export const predictRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps; limits: { maxInstances: number; maxBytes: number } }> = async (app, { deps, limits }) => {
  const { maxInstances, maxBytes } = limits;

  const tooMany = (count: number) =>
    new GraftError('too_many_instances', `A prediction request may hold at most ${maxInstances} instances (PREDICT_MAX_INSTANCES); this one has ${count}. Split it.`, {
      param: '/instances',
      statusCode: 413,
      details: { limit: 'PREDICT_MAX_INSTANCES', max: maxInstances },
    });

  app.post(
    '/checkpoints/:name/predict',
    {
      bodyLimit: maxBytes,
      // Read-only keys may predict: it changes nothing (the access check is the auth plugin's).
      config: { access: 'read' },
      schema: {
        tags: ['checkpoints'],
        summary: 'Predict with a checkpoint: class probabilities, outputs, or a layer\'s activations',
        description:
          'JSON `{instances, top?, layer?}`, or multipart/form-data with one or more image files (PNG, JPEG, WebP; fields `top` and `layer` optional) that are decoded and preprocessed exactly as the checkpoint\'s training data was (its manifest\'s `preprocess`: stretched to the input size, its channels, scaled to [0, 1]). Classifiers answer `predictions` with labels from the checkpoint\'s class names; other models, or a `layer`, answer `outputs`. Runs in an inference process, micro-batched with concurrent requests for the same checkpoint. Bad instances are 4xx naming `/instances/<i>`; too many instances or bytes 413; too many concurrent predictions 429 with Retry-After.',
        params: NameParams,
        consumes: ['application/json', 'multipart/form-data'],
        body: { content: { 'application/json': { schema: PredictJsonSchema } } },
        response: { 200: PredictResponseSchema, ...errorResponses(400, 404, 413, 415, 422, 429, 503) },
      },
    },
    async (request) => {
      const { input, top, layer } = request.isMultipart() ? await readImages(request, maxInstances, maxBytes, tooMany) : readJson(request.body as JsonBody, maxInstances, tooMany);
      return deps.predictions.predict(request.principal, request.params.name, input, { top: top ?? DEFAULT_TOP, layer });
    },
  );
};

type JsonBody = { instances: unknown[][]; top?: number; layer?: string };

function readJson(body: JsonBody, maxInstances: number, tooMany: (n: number) => GraftError) {
  if (body.instances.length > maxInstances) throw tooMany(body.instances.length);
  return { input: { kind: 'arrays', instances: body.instances.map(packed) } satisfies PredictInput, top: body.top, layer: body.layer };
}

/**
 * A flat instance of finite numbers as a Float32Array: it crosses to the inference process as
 * bytes instead of a structured clone of a JS array (the same float32 rounding the model input
 * gets). Anything else goes as it is, and the inference process names what is wrong with it.
 */
function packed(instance: unknown[]): unknown[] | Float32Array {
  for (let k = 0; k < instance.length; k++) {
    const v = instance[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) return instance;
  }
  return Float32Array.from(instance as number[]);
}

/** The image parts of a multipart request, as bytes (decoded in the inference process, never here). */
async function readImages(request: FastifyRequest, maxInstances: number, maxBytes: number, tooMany: (n: number) => GraftError) {
  const images: { filename: string; bytes: Uint8Array }[] = [];
  let bytes = 0;
  let top: number | undefined;
  let layer: string | undefined;
  for await (const part of request.parts({ limits: { files: maxInstances + 1, fileSize: maxBytes, fields: 4, fieldSize: 256 } })) {
    if (part.type === 'field') {
      const value = String(part.value);
      if (part.fieldname === 'top') {
        top = Number(value);
        if (!Number.isInteger(top) || top < 1 || top > MAX_TOP) throw new ValidationError('invalid_value', `\`top\` must be an integer from 1 to ${MAX_TOP}.`, '/top');
      } else if (part.fieldname === 'layer') {
        if (!new RegExp(LAYER_NAME_PATTERN).test(value)) throw new ValidationError('invalid_value', '`layer` must be a layer name.', '/layer');
        layer = value;
      } else {
        throw new ValidationError('unknown_field', `Unknown field \`${part.fieldname}\`; send image files, and optionally \`top\` and \`layer\`.`, `/${part.fieldname}`);
      }
      continue;
    }
    if (images.length >= maxInstances) throw tooMany(images.length + 1);
    const buffer = await part.toBuffer();
    bytes += buffer.length;
    if (bytes > maxBytes) throw new GraftError('body_too_large', `A prediction request may carry at most ${maxBytes} bytes (PREDICT_MAX_BYTES).`, { statusCode: 413, details: { limit: 'PREDICT_MAX_BYTES', max: maxBytes } });
    images.push({ filename: part.filename, bytes: buffer });
  }
  if (images.length === 0) throw new ValidationError('missing_field', 'The multipart request holds no image file; attach one or more PNG, JPEG or WebP files.', '/instances');
  return { input: { kind: 'images', images } satisfies PredictInput, top, layer };
}
