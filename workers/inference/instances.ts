import sharp from 'sharp';
import { GraftError, UnprocessableError, ValidationError } from '../../src/errors';
import { rebuildGraftError, serializeGraftError } from '../../src/untrusted/protocol';
import type { PredictInput, RowsPart, RowsResult } from '../../src/inference/protocol';
import type { Preprocess } from '../../src/storage/checkpoints';
import type { DatasetLimits } from '../../src/storage/datasets';
import { decodeImage, ImageTooLargeError } from '../../src/storage/datasets/images';
import { scalePixels } from '../engine/data/preprocess';

/** Image formats a prediction request may upload (sharp decodes each). */
const IMAGE_FORMATS = new Set(['png', 'jpeg', 'webp']);

const param = (i: number) => `/instances/${i}`;

/**
 * The request's instances as one [n, ...inputShape] block of floats, prepared exactly as the
 * checkpoint's training data was: JSON arrays are taken as they are (already in the training
 * scale, checked for shape and finiteness); image files are decoded, resized (stretch, crop or
 * pad), turned to its channels and scaled (unit, symmetric, imagenet, mean/std) as the
 * checkpoint's `preprocess` record says, by the very functions training uses
 * (src/storage/datasets/images.ts, workers/engine/data/preprocess.ts). Errors name the instance.
 */
export async function prepareInstances(input: PredictInput, inputShape: number[], preprocess: Preprocess, limits: DatasetLimits): Promise<{ x: Float32Array; count: number }> {
  const size = inputShape.reduce((a, b) => a * b, 1);
  if (input.kind === 'rows') {
    const checked = checkRows(input.x, input, inputShape);
    if (!checked.ok) throw rebuildGraftError(checked.error);
    return { x: input.x, count: checked.count };
  }
  if (input.kind === 'arrays') {
    const x = new Float32Array(input.instances.length * size);
    input.instances.forEach((instance, i) => fillFromArray(instance, inputShape, x.subarray(i * size, (i + 1) * size), i));
    return { x, count: input.instances.length };
  }
  const x = new Float32Array(input.images.length * size);
  // libvips decodes on its own threads: every image of the request at once.
  await Promise.all(input.images.map(async (image, i) => {
    const pixels = await decodeUpload(image.bytes, image.filename, inputShape, preprocess, limits, i);
    scalePixels(pixels, preprocess, x.subarray(i * size, (i + 1) * size));
  }));
  return { x, count: input.images.length };
}

/**
 * One request's packed instances against the model's input: as nested (`dims` equal to the input
 * shape), flat (`dims` one number, the input's size), or raw (no dims: any whole number of
 * instances); every value finite. The error names the first bad instance.
 */
export function checkRows(x: Float32Array, part: Pick<RowsPart, 'count' | 'dims' | 'maxCount'>, inputShape: number[]): RowsResult['parts'][number] {
  const size = inputShape.reduce((a, b) => a * b, 1);
  const expected = `${inputShape.join('×')} = ${size} numbers, nested ${inputShape.map((d) => `[${d}]`).join('')} or flat`;
  const fail = (err: GraftError) => ({ ok: false as const, error: serializeGraftError(err) });
  const count = part.count ?? x.length / size;
  if (!Number.isInteger(count) || count < 1) {
    return fail(new UnprocessableError('instance_shape_mismatch', `The body holds ${x.length} float32 values, not a whole number of instances of the model's input ${JSON.stringify(inputShape)} (${size} values each).`, '/instances'));
  }
  if (part.count === null && part.maxCount !== undefined && count > part.maxCount) {
    return fail(new GraftError('too_many_instances', `A prediction request may hold at most ${part.maxCount} instances (PREDICT_MAX_INSTANCES); this one has ${count}. Split it.`, { param: '/instances', statusCode: 413, details: { limit: 'PREDICT_MAX_INSTANCES', max: part.maxCount } }));
  }
  const dims = part.dims;
  if (dims && !(dims.length === 1 && dims[0] === size) && !(dims.length === inputShape.length && dims.every((d, k) => d === inputShape[k]))) {
    return fail(new UnprocessableError('instance_shape_mismatch', `Instance 0 has shape ${JSON.stringify(dims)}; the model's input ${JSON.stringify(inputShape)} needs ${expected}.`, param(0)));
  }
  if (!dims && part.count !== null && x.length !== count * size) {
    return fail(new UnprocessableError('instance_shape_mismatch', `Instance 0 has ${x.length / count} numbers; the model's input ${JSON.stringify(inputShape)} needs ${expected}.`, param(0)));
  }
  for (let k = 0; k < x.length; k++) {
    if (!Number.isFinite(x[k])) {
      const i = Math.floor(k / size);
      return fail(new ValidationError('invalid_instance', `Instance ${i} holds ${x[k]} at ${param(i)}/${k - i * size}; every value must be a finite number.`, param(i)));
    }
  }
  return { ok: true, count };
}

async function decodeUpload(bytes: Uint8Array, filename: string, inputShape: number[], preprocess: Preprocess, limits: DatasetLimits, i: number): Promise<Buffer> {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const what = `File ${i} (${JSON.stringify(filename)})`;
  if (inputShape.length !== 3 || inputShape[2] !== preprocess.channels) {
    throw new UnprocessableError('images_not_supported', `This checkpoint's input ${JSON.stringify(inputShape)} is not an image of ${preprocess.channels} channel(s); send JSON instances instead.`, param(i));
  }
  const format = await sharp(buffer, { limitInputPixels: false }).metadata().then((m) => m.format, () => null);
  if (!format || !IMAGE_FORMATS.has(format)) {
    throw new UnprocessableError('undecodable_image', `${what} is not a PNG, JPEG or WebP image${format ? ` (it is ${format})` : ''}.`, param(i));
  }
  try {
    return await decodeImage(buffer, [inputShape[0], inputShape[1], preprocess.channels], limits, preprocess.resize);
  } catch (err) {
    if (err instanceof ImageTooLargeError) throw new UnprocessableError('image_too_large', `${what} is too large: ${err.message}.`, param(i));
    throw new UnprocessableError('undecodable_image', `${what} could not be decoded: ${(err as Error).message}.`, param(i));
  }
}

/** Copies one JSON instance (nested [h][w][c] or flat) into `out`, checking every number on the way. */
function fillFromArray(instance: unknown, shape: number[], out: Float32Array, i: number): void {
  const expected = `${shape.join('×')} = ${out.length} numbers, nested ${shape.map((d) => `[${d}]`).join('')} or flat`;
  if (instance instanceof Float32Array) {
    // A flat instance of finite numbers, packed by the API (src/api/routes/predict.ts).
    if (instance.length !== out.length) throw new UnprocessableError('instance_shape_mismatch', `Instance ${i} has ${instance.length} numbers; the model's input ${JSON.stringify(shape)} needs ${expected}.`, param(i));
    out.set(instance);
    return;
  }
  if (!Array.isArray(instance)) throw new ValidationError('invalid_instance', `Instance ${i} must be an array (${expected}).`, param(i));
  if (instance.length === out.length && (out.length === 0 || !Array.isArray(instance[0]))) {
    for (let k = 0; k < out.length; k++) out[k] = checkedNumber(instance[k], i, `${param(i)}/${k}`);
    return;
  }
  let offset = 0;
  const walk = (value: unknown, depth: number, pointer: string): void => {
    if (depth === shape.length) {
      out[offset++] = checkedNumber(value, i, pointer);
      return;
    }
    if (!Array.isArray(value) || value.length !== shape[depth]) {
      const got = Array.isArray(value) ? `${value.length} entries` : typeof value;
      throw new UnprocessableError('instance_shape_mismatch', `Instance ${i} does not have the model's input shape ${JSON.stringify(shape)} (${expected}): at ${pointer} it has ${got} where ${shape[depth]} entries belong.`, param(i));
    }
    for (let k = 0; k < value.length; k++) walk(value[k], depth + 1, `${pointer}/${k}`);
  };
  walk(instance, 0, param(i));
}

function checkedNumber(value: unknown, i: number, pointer: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ValidationError('invalid_instance', `Instance ${i} holds ${JSON.stringify(value)} at ${pointer}; every value must be a finite number.`, param(i));
  }
  return value;
}
