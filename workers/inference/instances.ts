import sharp from 'sharp';
import { UnprocessableError, ValidationError } from '../../src/errors';
import type { PredictInput } from '../../src/inference/protocol';
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
