import { Type, type Static } from 'typebox';
import { ValidationError, type GraftError } from '../errors';

/**
 * Preprocessing as data: how raw images become a model's input. A pretrained network only keeps
 * what it knows if it is fed the way it was trained (MobileNet expects [-1, 1], ResNet ImageNet
 * mean/std), so the policy is part of the job spec (`dataset.preprocess`) and of every checkpoint
 * manifest (`preprocess`), and training, evaluation and prediction all apply the same record.
 * Pure: the schemas and the arithmetic; decoding lives with the datasets, tensors in the engine.
 */

export const RESIZE_POLICIES = ['stretch', 'crop', 'pad'] as const;
export const NAMED_SCALINGS = ['unit', 'symmetric', 'imagenet'] as const;

const strict = { additionalProperties: false } as const;

export const MeanStdSchema = Type.Object(
  {
    mean: Type.Array(Type.Number(), { minItems: 1, maxItems: 3, description: 'Per-channel mean in pixel units 0-255 (one value = every channel).' }),
    std: Type.Array(Type.Number({ exclusiveMinimum: 0 }), { minItems: 1, maxItems: 3, description: 'Per-channel standard deviation in pixel units 0-255.' }),
  },
  { ...strict, description: 'x = (pixel - mean) / std, per channel.' },
);

export const PreprocessSchema = Type.Object(
  {
    resize: Type.Enum([...RESIZE_POLICIES], { description: '`stretch` to the input size (default), `crop` the centre at the input aspect ratio, or `pad` with black to it.' }),
    channels: Type.Union([Type.Literal(1), Type.Literal(3)], { description: '1 (grayscale) or 3 (RGB); images are converted either way.' }),
    scaling: Type.Union([Type.Enum([...NAMED_SCALINGS]), MeanStdSchema], {
      description: '`unit` [0, 1] (default), `symmetric` [-1, 1] (MobileNet, Inception), `imagenet` ImageNet mean/std (ResNet, VGG), or an explicit {mean, std}.',
    }),
  },
  { ...strict, description: 'How images become a model\'s input, as a checkpoint manifest records it.' },
);

export const AugmentSchema = Type.Object(
  {
    flipHorizontal: Type.Optional(Type.Boolean({ description: 'Mirror left-right with probability 0.5.' })),
    flipVertical: Type.Optional(Type.Boolean({ description: 'Mirror top-bottom with probability 0.5.' })),
    rotate: Type.Optional(Type.Number({ minimum: 0, maximum: 180, description: 'Rotate by a uniform angle in [-rotate, rotate] degrees.' })),
    crop: Type.Optional(
      Type.Object(
        { scale: Type.Array(Type.Number({ exclusiveMinimum: 0, maximum: 1 }), { minItems: 2, maxItems: 2, description: '[min, max] fraction of the side kept (zoom in), e.g. [0.8, 1].' }) },
        strict,
      ),
    ),
    brightness: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'Add a uniform delta in [-brightness, brightness] of the input range.' })),
    contrast: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'Scale around the image mean by a factor in [1 - contrast, 1 + contrast].' })),
    translate: Type.Optional(Type.Number({ minimum: 0, maximum: 0.5, description: 'Shift by up to this fraction of the width/height.' })),
  },
  { ...strict, description: 'Random augmentation per batch, seeded from (seed, epoch, batch). Turns feature caching off.' },
);

/** The spec's `dataset.preprocess`: any field left out comes from the source checkpoint's record, else the default. */
export const PreprocessSpecSchema = Type.Object(
  {
    resize: Type.Optional(PreprocessSchema.properties.resize),
    channels: Type.Optional(PreprocessSchema.properties.channels),
    scaling: Type.Optional(PreprocessSchema.properties.scaling),
  },
  { ...strict, description: 'How images become the model\'s input. A field left out comes from the source checkpoint\'s record (transfer), else the default: stretch, the model\'s channels, unit.' },
);

export type Preprocess = Static<typeof PreprocessSchema>;
export type PreprocessSpec = Static<typeof PreprocessSpecSchema>;
export type ResizePolicy = Preprocess['resize'];
export type Scaling = Preprocess['scaling'];
export type Augment = Static<typeof AugmentSchema>;

/** torchvision / Keras ImageNet statistics, in pixel units. */
export const IMAGENET_MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255];
export const IMAGENET_STD = [0.229 * 255, 0.224 * 255, 0.225 * 255];

/** What graft did before preprocessing was data, and what a checkpoint without a record was trained with. */
export function defaultPreprocess(channels: number): Preprocess {
  return { resize: 'stretch', channels: channels === 1 ? 1 : 3, scaling: 'unit' };
}

/**
 * The preprocessing a job trains with: the spec's, else the source checkpoint's record, else the
 * default for the model's channels. The spec may set only some fields; the rest come from below.
 */
export function resolvePreprocess(fromSpec: PreprocessSpec | undefined, fromSource: Preprocess | undefined | null, channels: number): Preprocess {
  return { ...defaultPreprocess(channels), ...(fromSource ?? {}), ...(fromSpec ?? {}) };
}

/** "stretch, 3 channels, symmetric scaling": for events and logs. */
export function describePreprocess(p: Preprocess): string {
  const scaling = typeof p.scaling === 'string' ? p.scaling : `mean ${JSON.stringify(p.scaling.mean)} / std ${JSON.stringify(p.scaling.std)}`;
  return `${p.resize}, ${p.channels} channel${p.channels === 1 ? '' : 's'}, ${scaling} scaling`;
}

/** Per-channel (mean, std) in pixel units that `scaling` stands for. */
export function meanStd(scaling: Scaling, channels: number): { mean: number[]; std: number[] } {
  const fill = (v: number[]) => Array.from({ length: channels }, (_, c) => v[Math.min(c, v.length - 1)]);
  if (scaling === 'unit') return { mean: fill([0]), std: fill([255]) };
  if (scaling === 'symmetric') return { mean: fill([127.5]), std: fill([127.5]) };
  if (scaling === 'imagenet') {
    // Grayscale: the channel mean of the statistics.
    if (channels === 1) return { mean: [avg(IMAGENET_MEAN)], std: [avg(IMAGENET_STD)] };
    return { mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] };
  }
  return { mean: fill(scaling.mean), std: fill(scaling.std) };
}

/**
 * One 256-entry table per channel: byte → float. A table is exact and faster than arithmetic
 * per pixel; the result is interleaved like the pixels (HWC).
 */
export function scalingTables(scaling: Scaling, channels: number): Float32Array[] {
  const { mean, std } = meanStd(scaling, channels);
  return mean.map((m, c) => Float32Array.from({ length: 256 }, (_, v) => (v - m) / std[c]));
}

/** Scales `n` interleaved pixels of `bytes` (HWC, `tables.length` channels) into `out` at `outOffset`. */
export function scaleInto(bytes: Uint8Array, tables: Float32Array[], out: Float32Array, outOffset = 0): void {
  const channels = tables.length;
  if (channels === 1) {
    const t = tables[0];
    for (let i = 0; i < bytes.length; i++) out[outOffset + i] = t[bytes[i]];
    return;
  }
  for (let i = 0; i < bytes.length; i += channels) {
    for (let c = 0; c < channels; c++) out[outOffset + i + c] = tables[c][bytes[i + c]];
  }
}

/** The value range of one scaled channel: augmentation's brightness is a fraction of it. */
export function scaledRange(scaling: Scaling, channels: number): number {
  const { std } = meanStd(scaling, channels);
  return 255 / avg(std);
}

/** Cross-field rules: mean/std lengths fit the channels, crop scales are ordered. */
export function preprocessErrors(preprocess: PreprocessSpec | undefined, augment: Augment | undefined): GraftError[] {
  const errors: GraftError[] = [];
  const scaling = preprocess?.scaling;
  if (scaling && typeof scaling === 'object') {
    const channels = preprocess?.channels;
    for (const key of ['mean', 'std'] as const) {
      const n = scaling[key].length;
      if (n !== 1 && channels !== undefined && n !== channels) {
        errors.push(new ValidationError('invalid_field', `dataset.preprocess.scaling.${key} has ${n} values for ${channels} channels: give one per channel, or one for all.`, `/dataset/preprocess/scaling/${key}`));
      }
    }
    if (scaling.mean.length !== scaling.std.length) {
      errors.push(new ValidationError('invalid_field', 'dataset.preprocess.scaling.mean and .std must have as many values.', '/dataset/preprocess/scaling/std'));
    }
  }
  const scale = augment?.crop?.scale;
  if (scale && scale[0] > scale[1]) {
    errors.push(new ValidationError('invalid_field', `training.augment.crop.scale is [min, max]; got [${scale.join(', ')}].`, '/training/augment/crop/scale'));
  }
  return errors;
}

/** True if `augment` changes anything at all (an empty object or all-zero fields do not). */
export function augments(augment: Augment | undefined): boolean {
  if (!augment) return false;
  const { flipHorizontal, flipVertical, rotate, crop, brightness, contrast, translate } = augment;
  return Boolean(flipHorizontal || flipVertical || rotate || (crop && crop.scale[0] < 1) || brightness || contrast || translate);
}

function avg(v: number[]): number {
  return v.reduce((a, b) => a + b, 0) / v.length;
}
