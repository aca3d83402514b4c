import sharp from 'sharp';
import type { DatasetLimits, ImageShape } from './types';

/**
 * Every decode of a user image goes through here, under the image budgets: the size is read from
 * the header and checked against IMAGE_MAX_DIMENSION and IMAGE_MAX_PIXELS before any pixel is
 * decoded, and sharp's own pixel limit is lowered to the same budget as a second line.
 */

/** Thrown for an image over a budget; callers wrap it in their dataset error like any undecodable image. */
export class ImageTooLargeError extends Error {}

/** An image opened under the budgets; `meta` is its header, already checked. */
async function openImage(file: string | Buffer, limits: DatasetLimits, opts: sharp.SharpOptions = {}): Promise<{ image: sharp.Sharp; meta: sharp.Metadata }> {
  // The header alone (no pixels) says the size, so the budgets below can name what was exceeded;
  // sharp's own limit, on the decoding instance, backs them up.
  const meta = await sharp(file, { limitInputPixels: false }).metadata();
  const image = sharp(file, { ...opts, limitInputPixels: limits.imageMaxPixels });
  const { width, height } = meta;
  if (width > limits.imageMaxDimension || height > limits.imageMaxDimension) {
    throw new ImageTooLargeError(`it is ${width}x${height} pixels; images may be at most ${limits.imageMaxDimension} pixels wide and high (IMAGE_MAX_DIMENSION)`);
  }
  if (width * height > limits.imageMaxPixels) {
    throw new ImageTooLargeError(`it has ${width * height} pixels; images may have at most ${limits.imageMaxPixels} (IMAGE_MAX_PIXELS)`);
  }
  return { image, meta };
}

/**
 * The shape an image decodes to by default: its size after EXIF orientation, and 1 channel if it
 * is grayscale, else 3 (alpha is dropped, other colour spaces become sRGB). Reads the header only.
 */
export async function readImageShape(file: string, limits: DatasetLimits): Promise<ImageShape> {
  const { meta } = await openImage(file, limits);
  const colourChannels = meta.channels - (meta.hasAlpha ? 1 : 0);
  return [meta.autoOrient.height, meta.autoOrient.width, colourChannels === 1 ? 1 : 3];
}

/** Decodes the whole image once, as training will, failing on any decoding error (the upload check). */
export async function checkDecodes(file: string, limits: DatasetLimits): Promise<void> {
  const { image } = await openImage(file, limits, { failOn: 'error' });
  await image.raw().toBuffer();
}

/**
 * Decodes one image (a file, or its bytes: a prediction request's upload) to `shape` ([height, width, channels], channels 1 or 3) as 8-bit
 * interleaved pixels. The image is stretched to the target size without keeping its aspect
 * ratio (as Keras' image_dataset_from_directory does by default), so no pixel is cropped away
 * and no padding is invented; EXIF orientation is applied first, alpha is dropped.
 */
export async function decodeImage(file: string | Buffer, shape: ImageShape, limits: DatasetLimits): Promise<Buffer> {
  const [height, width, channels] = shape;
  const { image } = await openImage(file, limits);
  let img = image.autoOrient().resize(width, height, { fit: 'fill' }).removeAlpha();
  img = channels === 1 ? img.grayscale() : img.toColourspace('srgb');
  // depth 'uchar': 16-bit PNGs would otherwise come out as 16-bit samples.
  const { data, info } = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== channels || data.length !== height * width * channels) {
    throw new Error(`decoded to ${info.height}x${info.width}x${info.channels}, expected ${height}x${width}x${channels}`);
  }
  return data;
}
