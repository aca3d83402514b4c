import * as tf from '@tensorflow/tfjs';
import { depthwiseConv2dNativeBackpropFilter } from './depthwise';
import { ConvAttrs, convInfo, input4D, KernelArgs, flipSpatial, paddedInput, spreadOutputGradient } from './geometry';

/** NHWC axis orders for the batch<->channel swap of the filter gradient. */
const CHANNELS_AS_BATCH: number[] = [3, 1, 2, 0]; // x [B,H,W,Ci] -> [Ci,H,W,B]
const BATCH_AS_IN_CHANNELS: number[] = [1, 2, 0, 3]; // dy [B,oh,ow,Co] -> [oh,ow,B,Co] (a filter)
const TO_HWIO: number[] = [1, 2, 0, 3]; // [Ci,kh,kw,Co] -> [kh,kw,Ci,Co]
const SWAP_IO: number[] = [0, 1, 3, 2]; // [kh,kw,Ci,Co] -> [kh,kw,Co,Ci]

interface FilterGradAttrs extends ConvAttrs {
  filterShape: [number, number, number, number];
}

interface InputGradAttrs extends ConvAttrs {
  inputShape: [number, number, number, number];
}

/**
 * Conv2DBackpropFilter. Why: wasm has no such kernel (conv layers cannot train there) and the cpu
 * one is a scalar loop (~18 s per batch of the seed's conv2). The filter gradient
 *   dW[kh,kw,ci,co] = sum_{b,oh,ow} xPadded[b, oh*s + kh*d, ow*s + kw*d, ci] * dy[b,oh,ow,co]
 * is itself a convolution once batch and channels swap roles: the input becomes x as [Ci,H,W,B],
 * the filter becomes dy as [oh,ow,B,Co] with dilation = the forward stride, and the output
 * [Ci,kh,kw,Co] is sampled with stride = the forward dilation. The backend's forward Conv2D
 * (XNNPACK on wasm) does the reduction; this measured fastest of im2col-by-slices + matMul,
 * im2col-by-depthwise + matMul and the wasm Conv3DBackpropFilterV2 kernel (a scalar loop too).
 * With one input channel (grayscale first layers) that conv has a batch of one and a huge filter,
 * which tfjs-wasm re-transposes on every call; the filter gradient of a depthwise conv with
 * channel multiplier Co is then the same numbers, 1.5x faster.
 */
export function conv2DBackpropFilter(args: KernelArgs): tf.Tensor {
  const a = args.attrs as unknown as FilterGradAttrs;
  const info = convInfo('Conv2DBackpropFilter', args.inputs.x?.shape ?? [], a.filterShape, a, false);
  if (info.inChannels === 1) return depthwiseConv2dNativeBackpropFilter(args);
  return tf.tidy(() => {
    const input = tf.transpose(paddedInput(input4D(args, 'x'), info), CHANNELS_AS_BATCH);
    const filter = tf.transpose(input4D(args, 'dy'), BATCH_AS_IN_CHANNELS);
    // Stride and dilation trade places; convInfo() guarantees at least one of them is 1.
    const grad = tf.conv2d(input, filter, [info.dilationHeight, info.dilationWidth], 'valid', 'NHWC', [info.strideHeight, info.strideWidth]);
    return tf.transpose(grad, TO_HWIO);
  });
}

/**
 * Conv2DBackpropInput. Why: the wasm kernel exists but is a scalar loop, ~25x slower than the
 * forward conv it mirrors (it dominated a wasm training step once the filter gradient was fast).
 * The input gradient is a stride-1 forward conv of dy (zeros inserted between pixels for stride > 1,
 * then padded) with the filter rotated 180 degrees and its in/out channels swapped.
 */
export function conv2DBackpropInput(args: KernelArgs): tf.Tensor {
  return tf.tidy(() => {
    const dy = input4D(args, 'dy');
    const filter = input4D(args, 'filter');
    const a = args.attrs as unknown as InputGradAttrs;
    const info = convInfo('Conv2DBackpropInput', a.inputShape, filter.shape, a, false);
    const flipped = tf.transpose(flipSpatial(filter), SWAP_IO);
    return tf.conv2d(spreadOutputGradient(dy, info), flipped, 1, 'valid', 'NHWC', [info.dilationHeight, info.dilationWidth]);
  });
}
