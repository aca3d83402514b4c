import * as tf from '@tensorflow/tfjs';

/**
 * Shared geometry for the gradient kernels: every kernel here turns a convolution gradient into
 * *forward* convolutions with explicit padding, so the backend's fast forward path does the work.
 */

export type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

export interface ConvAttrs {
  strides: number | [number, number];
  pad: Pad;
  dataFormat?: string;
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

export type ConvInfo = tf.backend_util.Conv2DInfo;
export type KernelArgs = Parameters<tf.KernelFunc>[0];
type Shape4 = [number, number, number, number];

/**
 * A kernel input as a Tensor, which is what every tfjs op passes. These kernels compute with ops,
 * so a bare TensorInfo (only a raw runKernel caller could pass one) is refused rather than wrapped:
 * wrapping would let the engine free data it does not track when the wrapper is disposed.
 */
export function input4D(args: KernelArgs, name: string): tf.Tensor4D {
  const input = args.inputs[name] as tf.Tensor4D | undefined;
  // The engine's own test for "is a Tensor" (instanceof breaks across duplicated tfjs-core copies).
  if (input?.rank == null) throw new Error(`graft's training kernels expect a Tensor for input '${name}'.`);
  return input;
}

/** Validates the attrs the engine passes and computes the usual tfjs convolution geometry. */
export function convInfo(kernel: string, xShape: number[], filterShape: number[], attrs: ConvAttrs, depthwise: boolean): ConvInfo {
  if (attrs.dataFormat != null && attrs.dataFormat !== 'NHWC' && attrs.dataFormat !== 'channelsLast') {
    throw new Error(`${kernel}: dataFormat '${attrs.dataFormat}' is not supported by graft's training kernels; use NHWC (channelsLast).`);
  }
  if (xShape.length !== 4 || filterShape.length !== 4) {
    throw new Error(`${kernel}: expected rank-4 input and filter shapes, got [${xShape}] and [${filterShape}].`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    xShape as Shape4, filterShape as Shape4, attrs.strides, attrs.dilations ?? 1,
    attrs.pad, attrs.dimRoundingMode, depthwise, 'channelsLast');
  if (Math.max(info.strideHeight, info.strideWidth) > 1 && Math.max(info.dilationHeight, info.dilationWidth) > 1) {
    throw new Error(`${kernel}: strides > 1 together with dilations > 1 are not supported (tfjs convolutions allow one or the other).`);
  }
  return info;
}

/** Pads (positive, with `value`) or crops (negative) the two spatial axes of an NHWC tensor. */
export function padOrCrop(x: tf.Tensor4D, top: number, bottom: number, left: number, right: number, value = 0): tf.Tensor4D {
  const [batch, height, width, channels] = x.shape;
  const [ct, cb, cl, cr] = [top, bottom, left, right].map((p) => Math.max(0, -p));
  // Cropped as a 3-D slice of [B, H, W*C]: wasm's 4-D slice copies one C-sized run at a time.
  const cropped = ct || cb || cl || cr
    ? tf.reshape(tf.slice(tf.reshape(x, [batch, height, width * channels]), [0, ct, cl * channels],
      [batch, height - ct - cb, (width - cl - cr) * channels]), [batch, height - ct - cb, width - cl - cr, channels]) as tf.Tensor4D
    : x;
  const [pt, pb, pl, pr] = [top, bottom, left, right].map((p) => Math.max(0, p));
  return pt || pb || pl || pr ? tf.pad(cropped, [[0, 0], [pt, pb], [pl, pr], [0, 0]], value) : cropped;
}

/**
 * Places pixel (r, c) of `t` at (r * sh + offH, c * sw + offW) of a zero grid of size
 * [h * sh, w * sw] (offsets below the strides), as pad + reshape: [B, h, 1, w, 1, C] padded to
 * [B, h, sh, w, sw, C]. Used to spread a strided output's gradient back onto the input grid.
 */
export function zeroInsert(t: tf.Tensor4D, sh: number, sw: number, offH = 0, offW = 0): tf.Tensor4D {
  if (sh === 1 && sw === 1) return t;
  const [batch, h, w, channels] = t.shape;
  const spread = tf.pad(tf.reshape(t, [batch, h, 1, w, 1, channels]),
    [[0, 0], [0, 0], [offH, sh - 1 - offH], [0, 0], [offW, sw - 1 - offW], [0, 0]]);
  return tf.reshape(spread, [batch, h * sh, w * sw, channels]);
}

/**
 * The input exactly as the forward convolution saw it: padded by the conv's own padding, and
 * cropped of trailing rows/columns no window touched (a 'valid' stride that does not divide).
 * Its spatial size is (out - 1) * stride + effectiveFilter.
 */
export function paddedInput(x: tf.Tensor4D, info: ConvInfo, padValue = 0): tf.Tensor4D {
  const needH = (info.outHeight - 1) * info.strideHeight + info.effectiveFilterHeight;
  const needW = (info.outWidth - 1) * info.strideWidth + info.effectiveFilterWidth;
  const { top, left } = info.padInfo;
  return padOrCrop(x, top, needH - info.inHeight - top, left, needW - info.inWidth - left, padValue);
}

/**
 * dy spread back onto the input grid for a gradient-of-input computed as a stride-1 forward conv:
 * stride-1 zeros inserted between dy's pixels, then padded so that a 'valid' conv with the flipped
 * filter (same dilation) yields exactly the input's spatial size.
 */
export function spreadOutputGradient(dy: tf.Tensor4D, info: ConvInfo): tf.Tensor4D {
  const [, outH, outW] = dy.shape;
  const sh = info.strideHeight;
  const sw = info.strideWidth;
  // zeroInsert leaves (stride - 1) trailing zeros, which the padding below accounts for.
  const spread = zeroInsert(dy, sh, sw);
  const top = info.effectiveFilterHeight - 1 - info.padInfo.top;
  const left = info.effectiveFilterWidth - 1 - info.padInfo.left;
  const bottom = info.inHeight + info.effectiveFilterHeight - 1 - top - outH * sh;
  const right = info.inWidth + info.effectiveFilterWidth - 1 - left - outW * sw;
  return padOrCrop(spread, top, bottom, left, right);
}

/** A filter rotated by 180 degrees in space, so a correlation with it is a true convolution. */
export function flipSpatial(filter: tf.Tensor4D): tf.Tensor4D {
  return tf.reverse(filter, [0, 1]);
}
