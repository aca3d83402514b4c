import sharp from 'sharp';
import type { ImageShape } from '../../../src/storage/datasets';

/**
 * Decodes one image file to `shape` ([height, width, channels], channels 1 or 3) as 8-bit
 * interleaved pixels. The image is stretched to the target size without keeping its aspect
 * ratio (as Keras' image_dataset_from_directory does by default), so no pixel is cropped away
 * and no padding is invented; EXIF orientation is applied first, alpha is dropped.
 */
export async function decodeImage(file: string, shape: ImageShape): Promise<Buffer> {
  const [height, width, channels] = shape;
  let img = sharp(file).autoOrient().resize(width, height, { fit: 'fill' }).removeAlpha();
  img = channels === 1 ? img.grayscale() : img.toColourspace('srgb');
  // depth 'uchar': 16-bit PNGs would otherwise come out as 16-bit samples.
  const { data, info } = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== channels || data.length !== height * width * channels) {
    throw new Error(`decoded to ${info.height}x${info.width}x${info.channels}, expected ${height}x${width}x${channels}`);
  }
  return data;
}
