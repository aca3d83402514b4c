import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { GraftError, ValidationError } from '../../errors';
import type { PredictInput, RowsInput } from '../../inference/protocol';
import { NPY_TYPE, RAW_FLOAT32_TYPE, rowsFromFloat32, rowsFromNpy } from '../binary-instances';
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

/** `top` and `layer` for a binary body (JSON bodies may carry them in the body instead). */
const PredictQuery = Type.Object({ top: Type.Optional(Top), layer: Type.Optional(Layer) }, { additionalProperties: false });

/** Documents a binary body in OpenAPI without a schema the validator would apply to a Buffer. */
const binaryBody = (description: string) => ({ schema: Type.Unsafe<Buffer>({ description, format: 'binary' }) });

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
  // Binary instances (binary-instances.ts), as bytes: parsed in the handler, bounded by bodyLimit.
  app.addContentTypeParser([RAW_FLOAT32_TYPE, NPY_TYPE], { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  const tooMany = (count: number) =>
    new GraftError('too_many_instances', `A prediction request may hold at most ${maxInstances} instances (PREDICT_MAX_INSTANCES); this one has ${count}. Split it.`, {
      param: '/instances',
      statusCode: 413,
      details: { limit: 'PREDICT_MAX_INSTANCES', max: maxInstances },
    });

  // The caller's own checkpoints, and the shared ones (`public/<name>` in a spec).
  for (const namespace of ['own', 'public'] as const) {
    const prefix = namespace === 'own' ? '/checkpoints' : '/checkpoints/public';
    app.post(
      `${prefix}/:name/predict`,
      {
        bodyLimit: maxBytes,
        // Read-only keys may predict: it changes nothing (the access check is the auth plugin's).
        config: { access: 'read' },
        schema: {
          tags: ['checkpoints'],
          summary: namespace === 'own' ? "Predict with a checkpoint: class probabilities, outputs, or a layer's activations" : 'Predict with a public checkpoint (shared by an admin with every tenant)',
          description:
            (namespace === 'public' ? 'The same as `POST /v1/checkpoints/{name}/predict`, with the checkpoint `public/{name}`. ' : '') +
            'JSON `{instances, top?, layer?}`; or the instances as bytes, `application/octet-stream` (little-endian float32 values, instances back to back) or `application/x-npy` (a NumPy .npy file, float32 or float64, shape (instances, ...input shape)), with `top` and `layer` in the query string; or multipart/form-data with one or more image files (PNG, JPEG, WebP; fields `top` and `layer` optional) that are decoded and preprocessed exactly as the checkpoint\'s training data was (its manifest\'s `preprocess`: stretched to the input size, its channels, scaled to [0, 1]). Classifiers answer `predictions` with labels from the checkpoint\'s class names; other models, or a `layer`, answer `outputs`. Runs in an inference process, micro-batched with concurrent requests for the same checkpoint. Bad instances are 4xx naming `/instances/<i>`; too many instances or bytes 413; too many concurrent predictions 429 with Retry-After.',
          params: NameParams,
          querystring: PredictQuery,
          consumes: ['application/json', RAW_FLOAT32_TYPE, NPY_TYPE, 'multipart/form-data'],
          body: {
            content: {
              'application/json': { schema: PredictJsonSchema },
              [RAW_FLOAT32_TYPE]: binaryBody('Little-endian float32 values, instances back to back, in the scale the model was trained on.'),
              [NPY_TYPE]: binaryBody('A NumPy .npy file (np.save) of dtype <f4 or <f8, C order, shape (instances, ...input shape) or (instances, input size).'),
            },
          },
          response: { 200: PredictResponseSchema, ...errorResponses(400, 404, 413, 415, 422, 429, 503) },
        },
      },
      async (request) => {
        const { input, top, layer } = await readInstances(request, request.query, maxInstances, maxBytes, tooMany);
        return deps.predictions.predict(request.principal, request.params.name, input, { top: top ?? DEFAULT_TOP, layer, namespace });
      },
    );
  }
};

type JsonBody = { instances: unknown[][]; top?: number; layer?: string };
type Options = { top?: number; layer?: string };
type Parsed = { input: PredictInput } & Options;

/** The request's instances in whichever form it sent them (JSON, raw float32, .npy, image files). */
async function readInstances(request: FastifyRequest, query: Options, maxInstances: number, maxBytes: number, tooMany: (n: number) => GraftError): Promise<Parsed> {
  if (request.isMultipart()) {
    const images = await readImages(request, maxInstances, maxBytes, tooMany);
    return { ...images, top: images.top ?? query.top, layer: images.layer ?? query.layer };
  }
  const type = request.headers['content-type']?.split(';')[0].trim().toLowerCase();
  if (type === RAW_FLOAT32_TYPE) return { input: rowsFromFloat32(request.body as Buffer, maxInstances), ...query };
  if (type === NPY_TYPE) {
    const input = rowsFromNpy(request.body as Buffer);
    if (input.count! > maxInstances) throw tooMany(input.count!);
    return { input, ...query };
  }
  const body = request.body as JsonBody;
  if (body.instances.length > maxInstances) throw tooMany(body.instances.length);
  return { input: packInstances(body.instances) ?? { kind: 'arrays', instances: body.instances }, top: body.top ?? query.top, layer: body.layer ?? query.layer };
}

/**
 * JSON instances of finite numbers, all nested alike (flat, or rectangular [h][w][c]), as one
 * float32 block: it crosses to the inference process as bytes, coalesced with other requests
 * (RowCoalescer), with the same float32 rounding the model input gets. Anything else (ragged,
 * mixed, a string, a non-finite number) is null: it goes as parsed, and the inference process
 * names exactly what is wrong with it.
 */
export function packInstances(instances: unknown[][]): RowsInput | null {
  const dims: number[] = [];
  for (let v: unknown = instances[0]; Array.isArray(v); v = v[0]) dims.push(v.length);
  const size = dims.reduce((a, b) => a * b, 1);
  if (dims.length === 0 || size === 0) return null;
  const x = new Float32Array(instances.length * size);
  const last = dims.length - 1;
  let at = 0;
  // The innermost arrays are copied in a loop of their own: most of the work is there, and a
  // call per number cost as much as the copy (784 numbers: 9 µs against 6).
  const fill = (value: unknown, depth: number): boolean => {
    if (!Array.isArray(value) || value.length !== dims[depth]) return false;
    if (depth === last) {
      for (let k = 0; k < value.length; k++) {
        const n: unknown = value[k];
        if (typeof n !== 'number' || !Number.isFinite(n)) return false;
        x[at++] = n;
      }
      return true;
    }
    for (let k = 0; k < value.length; k++) if (!fill(value[k], depth + 1)) return false;
    return true;
  };
  for (const instance of instances) if (!fill(instance, 0)) return null;
  return { kind: 'rows', x, count: instances.length, dims };
}

/** The image parts of a multipart request, as bytes (decoded in the inference process, never here). */
async function readImages(request: FastifyRequest, maxInstances: number, maxBytes: number, tooMany: (n: number) => GraftError): Promise<Parsed> {
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
