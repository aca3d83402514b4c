import * as tf from '@tensorflow/tfjs';
import type { Augment } from '../../../src/spec/preprocess';
import { Random } from './random';

/**
 * Random augmentation of one training batch, on the batch tensor (inside the step's tidy).
 * Every random number comes from a generator seeded by (seed, epoch, batch) only, drawn in a
 * fixed order per sample: the same seed gives the same weights, and a run resumed at batch b
 * draws exactly what an uninterrupted run drew there (nothing depends on earlier batches).
 *
 * The geometric part (flips, rotation, zoom crop, translation) is one affine map per sample,
 * applied by tf.image.transform (bilinear, edges repeated); brightness and contrast follow.
 */

const GOLDEN = 0x9e3779b9;
const MIX = 0x85ebca6b;

/** The batch's generator: a hash of (seed, epoch, batch), so nearby batches get unrelated streams. */
export function augmentRandom(seed: number, epoch: number, batch: number): Random {
  let h = seed | 0;
  h = Math.imul(h ^ (h >>> 16), MIX) ^ Math.imul(epoch + 1, GOLDEN);
  h = Math.imul(h ^ (h >>> 13), MIX) ^ Math.imul(batch + 1, 0xc2b2ae35);
  return new Random((h ^ (h >>> 16)) | 0);
}

/**
 * `x` [n, h, w, c] augmented per `augment`. `range` is the width of the scaled input's range
 * (1 for unit scaling, 2 for symmetric), so a brightness of 0.1 is a tenth of it whatever the scaling.
 */
export function augmentBatch(x: tf.Tensor4D, augment: Augment, rng: Random, range: number): tf.Tensor4D {
  const [n, h, w] = x.shape;
  const uniform = (lo: number, hi: number) => lo + (hi - lo) * rng.next();
  const transforms = new Float32Array(n * 8);
  const shift = new Float32Array(n);
  const factor = new Float32Array(n);
  let geometric = false;
  const cx = (w - 1) / 2;
  const cy = (h - 1) / 2;
  for (let i = 0; i < n; i++) {
    // Drawn unconditionally, in one order: switching one option on does not reshuffle the others.
    const flipX = rng.next() < 0.5 && augment.flipHorizontal ? -1 : 1;
    const flipY = rng.next() < 0.5 && augment.flipVertical ? -1 : 1;
    const angle = (uniform(-1, 1) * (augment.rotate ?? 0) * Math.PI) / 180;
    const [lo, hi] = augment.crop?.scale ?? [1, 1];
    const scale = uniform(lo, hi);
    const tx = uniform(-1, 1) * (augment.translate ?? 0) * w;
    const ty = uniform(-1, 1) * (augment.translate ?? 0) * h;
    shift[i] = uniform(-1, 1) * (augment.brightness ?? 0) * range;
    factor[i] = 1 + uniform(-1, 1) * (augment.contrast ?? 0);
    if (flipX !== 1 || flipY !== 1 || angle !== 0 || scale !== 1 || tx !== 0 || ty !== 0) geometric = true;
    // Output pixel p reads input c + A (p - c) + t, with A = scale · R(angle) · diag(flipX, flipY).
    const cos = Math.cos(angle) * scale;
    const sin = Math.sin(angle) * scale;
    const a00 = cos * flipX;
    const a01 = -sin * flipY;
    const a10 = sin * flipX;
    const a11 = cos * flipY;
    transforms.set([a00, a01, cx + tx - a00 * cx - a01 * cy, a10, a11, cy + ty - a10 * cx - a11 * cy, 0, 0], i * 8);
  }
  return tf.tidy(() => {
    let out: tf.Tensor4D = x;
    if (geometric) out = tf.image.transform(out, tf.tensor2d(transforms, [n, 8]), 'bilinear', 'nearest');
    if (augment.contrast) {
      const mean = tf.mean(out, [1, 2, 3], true);
      out = tf.add(tf.mul(tf.sub(out, mean), tf.tensor4d(factor, [n, 1, 1, 1])), mean);
    }
    if (augment.brightness) out = tf.add(out, tf.tensor4d(shift, [n, 1, 1, 1]));
    return out;
  });
}
