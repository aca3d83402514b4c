import { decodeImage, DEFAULT_DATASET_LIMITS, type DatasetLimits, type ImageShape } from '../../../src/storage/datasets';
import { scaleInto, scalingTables, type Preprocess } from '../../../src/spec/preprocess';
import type { HostTensor } from '../host-data';
import type { SampleStore } from '../../../src/storage/datasets';

/**
 * The one place images become model input, for training, evaluation and prediction alike:
 * decode + resize (sharp, per `preprocess.resize`) to uint8 HWC at the model's input size and
 * `preprocess.channels`, then scale to float32 per `preprocess.scaling`. Training and evaluation
 * decode through the sample cache (same decodeImage, same policy) and scale with `scaledRows`.
 */

/** The model's input for one image file or encoded buffer. */
export async function preprocessImage(image: string | Buffer, inputShape: readonly number[], preprocess: Preprocess, limits: DatasetLimits = DEFAULT_DATASET_LIMITS): Promise<Float32Array> {
  const shape = checkChannels(inputShape, preprocess);
  const pixels = await decodeImage(image, shape, limits, preprocess.resize);
  return scalePixels(pixels, preprocess);
}

/** uint8 HWC pixels (any number of samples back to back) scaled per `preprocess.scaling`. */
export function scalePixels(pixels: Uint8Array, preprocess: Preprocess, out = new Float32Array(pixels.length)): Float32Array {
  scaleInto(pixels, scalingTables(preprocess.scaling, preprocess.channels), out);
  return out;
}

/**
 * Rows of a sample store (optionally through an index map: a split's view, no copy), scaled
 * per `preprocess` as they are read.
 */
export function scaledRows(store: SampleStore, indices: Int32Array | null, preprocess: Preprocess): HostTensor {
  const [h, w, c] = store.shape;
  const size = h * w * c;
  const tables = scalingTables(preprocess.scaling, c);
  const n = indices ? indices.length : store.count;
  return {
    shape: [n, h, w, c],
    async read(idx) {
      const mapped = indices ? Int32Array.from(idx, (i) => indices[i]) : idx;
      const bytes = new Uint8Array(idx.length * size);
      await store.read(mapped, bytes);
      const out = new Float32Array(bytes.length);
      scaleInto(bytes, tables, out);
      return out;
    },
  };
}

function checkChannels(inputShape: readonly number[], preprocess: Preprocess): ImageShape {
  if (inputShape.length !== 3) throw new RangeError(`an image model's input is [height, width, channels], got ${JSON.stringify(inputShape)}`);
  return [inputShape[0], inputShape[1], preprocess.channels];
}
