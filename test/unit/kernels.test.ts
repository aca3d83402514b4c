import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerTrainingKernels, TRAINING_KERNELS, unregisterTrainingKernels } from '../../workers/engine/kernels';

/**
 * graft's training kernels against naive float64 loops written here (which are themselves checked
 * against the stock cpu kernels), on both the wasm and the cpu backend.
 */

const TOLERANCE = 1e-4;
const BACKENDS = ['wasm', 'cpu'] as const;
const LEAK_CALLS = 5;
/** Central differences of a float32 loss: a step this size keeps rounding error near 1e-4. */
const FINITE_DIFFERENCE_STEP = 1e-2;
const FINITE_DIFFERENCE_TOLERANCE = 1e-2;
const WASM_DIST = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep;

type Shape4 = [number, number, number, number];
type Info = tf.backend_util.Conv2DInfo;
type PadSpec = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

// ---------------------------------------------------------------------------------------------
// Naive references
// ---------------------------------------------------------------------------------------------

/** Calls fn for every (output pixel, filter tap) pair whose input pixel is inside the image. */
function forEachTap(info: Info, fn: (b: number, oh: number, ow: number, kh: number, kw: number, ih: number, iw: number) => void): void {
  for (let b = 0; b < info.batchSize; b++) {
    for (let oh = 0; oh < info.outHeight; oh++) {
      for (let ow = 0; ow < info.outWidth; ow++) {
        for (let kh = 0; kh < info.filterHeight; kh++) {
          const ih = oh * info.strideHeight + kh * info.dilationHeight - info.padInfo.top;
          if (ih < 0 || ih >= info.inHeight) continue;
          for (let kw = 0; kw < info.filterWidth; kw++) {
            const iw = ow * info.strideWidth + kw * info.dilationWidth - info.padInfo.left;
            if (iw >= 0 && iw < info.inWidth) fn(b, oh, ow, kh, kw, ih, iw);
          }
        }
      }
    }
  }
}

function at4(shape: number[], a: number, b: number, c: number, d: number): number {
  return ((a * shape[1] + b) * shape[2] + c) * shape[3] + d;
}

function naiveConvFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, info: Info): tf.Tensor {
  const [X, DY] = [x.dataSync(), dy.dataSync()];
  const fs = [info.filterHeight, info.filterWidth, info.inChannels, info.outChannels];
  const out = new Float64Array(fs[0] * fs[1] * fs[2] * fs[3]);
  forEachTap(info, (b, oh, ow, kh, kw, ih, iw) => {
    for (let ci = 0; ci < info.inChannels; ci++) {
      const xv = X[at4(x.shape, b, ih, iw, ci)];
      for (let co = 0; co < info.outChannels; co++) out[at4(fs, kh, kw, ci, co)] += xv * DY[at4(dy.shape, b, oh, ow, co)];
    }
  });
  return tf.tensor(Float32Array.from(out), fs);
}

function naiveConvInputGrad(dy: tf.Tensor4D, w: tf.Tensor4D, info: Info): tf.Tensor {
  const [DY, W] = [dy.dataSync(), w.dataSync()];
  const out = new Float64Array(info.inShape.reduce((p, d) => p * d, 1));
  forEachTap(info, (b, oh, ow, kh, kw, ih, iw) => {
    for (let ci = 0; ci < info.inChannels; ci++) {
      let sum = 0;
      for (let co = 0; co < info.outChannels; co++) sum += DY[at4(dy.shape, b, oh, ow, co)] * W[at4(w.shape, kh, kw, ci, co)];
      out[at4(info.inShape, b, ih, iw, ci)] += sum;
    }
  });
  return tf.tensor(Float32Array.from(out), info.inShape);
}

function naiveDepthwiseFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, info: Info, multiplier: number): tf.Tensor {
  const [X, DY] = [x.dataSync(), dy.dataSync()];
  const fs = [info.filterHeight, info.filterWidth, info.inChannels, multiplier];
  const out = new Float64Array(fs[0] * fs[1] * fs[2] * fs[3]);
  forEachTap(info, (b, oh, ow, kh, kw, ih, iw) => {
    for (let c = 0; c < info.inChannels; c++) {
      for (let m = 0; m < multiplier; m++) out[at4(fs, kh, kw, c, m)] += X[at4(x.shape, b, ih, iw, c)] * DY[at4(dy.shape, b, oh, ow, c * multiplier + m)];
    }
  });
  return tf.tensor(Float32Array.from(out), fs);
}

function naiveDepthwiseInputGrad(dy: tf.Tensor4D, w: tf.Tensor4D, info: Info, multiplier: number): tf.Tensor {
  const [DY, W] = [dy.dataSync(), w.dataSync()];
  const out = new Float64Array(info.inShape.reduce((p, d) => p * d, 1));
  forEachTap(info, (b, oh, ow, kh, kw, ih, iw) => {
    for (let c = 0; c < info.inChannels; c++) {
      for (let m = 0; m < multiplier; m++) out[at4(info.inShape, b, ih, iw, c)] += DY[at4(dy.shape, b, oh, ow, c * multiplier + m)] * W[at4(w.shape, kh, kw, c, m)];
    }
  });
  return tf.tensor(Float32Array.from(out), info.inShape);
}

/** Each window's gradient goes to its first strict maximum (row-major), as tfjs and TF do. */
function naiveMaxPoolGrad(x: tf.Tensor4D, dy: tf.Tensor4D, info: Info): tf.Tensor {
  const [X, DY] = [x.dataSync(), dy.dataSync()];
  const out = new Float64Array(X.length);
  for (let b = 0; b < info.batchSize; b++) {
    for (let oh = 0; oh < info.outHeight; oh++) {
      for (let ow = 0; ow < info.outWidth; ow++) {
        for (let c = 0; c < info.inChannels; c++) {
          let best = -Infinity;
          let where = -1;
          for (let kh = 0; kh < info.filterHeight; kh++) {
            const ih = oh * info.strideHeight + kh - info.padInfo.top;
            for (let kw = 0; kw < info.filterWidth; kw++) {
              const iw = ow * info.strideWidth + kw - info.padInfo.left;
              if (ih < 0 || ih >= info.inHeight || iw < 0 || iw >= info.inWidth) continue;
              const i = at4(x.shape, b, ih, iw, c);
              if (X[i] > best) [best, where] = [X[i], i];
            }
          }
          if (where >= 0) out[where] += DY[at4(dy.shape, b, oh, ow, c)];
        }
      }
    }
  }
  return tf.tensor(Float32Array.from(out), x.shape);
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

interface ConvCase {
  x: Shape4;
  filter: Shape4;
  strides: number | [number, number];
  pad: PadSpec;
  dilations?: number;
}

const CONV_CASES: ConvCase[] = [
  { x: [1, 9, 9, 1], filter: [3, 3, 1, 4], strides: 1, pad: 'same' },
  { x: [3, 9, 9, 3], filter: [3, 3, 3, 8], strides: 2, pad: 'same' },
  { x: [2, 10, 10, 3], filter: [3, 3, 3, 5], strides: 2, pad: 'valid' },
  { x: [2, 12, 12, 4], filter: [5, 5, 4, 6], strides: 1, pad: 'valid' },
  { x: [4, 11, 11, 2], filter: [5, 5, 2, 3], strides: 2, pad: 'same' },
  { x: [2, 7, 7, 16], filter: [1, 1, 16, 8], strides: 1, pad: 'valid' },
  { x: [2, 7, 7, 8], filter: [1, 1, 8, 16], strides: 2, pad: 'same' },
  { x: [2, 8, 9, 3], filter: [3, 2, 3, 4], strides: [2, 1], pad: 'same' },
  { x: [2, 8, 8, 2], filter: [3, 3, 2, 3], strides: 1, pad: 1 },
  { x: [2, 8, 8, 2], filter: [3, 3, 2, 3], strides: 2, pad: [[0, 0], [2, 1], [0, 3], [0, 0]] },
  { x: [1, 8, 8, 2], filter: [3, 3, 2, 2], strides: 1, pad: [[0, 0], [4, 0], [0, 5], [0, 0]] },
  { x: [2, 10, 10, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'same', dilations: 2 },
  { x: [8, 28, 28, 1], filter: [5, 5, 1, 16], strides: 1, pad: 'valid' }, // the seed's enc_conv1
  { x: [8, 12, 12, 16], filter: [5, 5, 16, 32], strides: 1, pad: 'valid' }, // the seed's enc_conv2
];

interface DepthwiseCase {
  x: Shape4;
  filter: Shape4;
  strides: number;
  pad: PadSpec;
  dilations?: number;
}

const DEPTHWISE_CASES: DepthwiseCase[] = [
  { x: [2, 9, 9, 4], filter: [3, 3, 4, 1], strides: 1, pad: 'same' },
  { x: [3, 9, 9, 4], filter: [3, 3, 4, 1], strides: 2, pad: 'same' },
  { x: [2, 10, 10, 3], filter: [3, 3, 3, 2], strides: 2, pad: 'valid' },
  { x: [1, 11, 11, 8], filter: [5, 5, 8, 1], strides: 1, pad: 'valid' },
  { x: [2, 8, 8, 2], filter: [1, 1, 2, 3], strides: 1, pad: 'same' },
  { x: [2, 10, 10, 2], filter: [3, 3, 2, 2], strides: 1, pad: 'same', dilations: 2 },
  { x: [2, 8, 8, 3], filter: [3, 3, 3, 1], strides: 2, pad: [[0, 0], [1, 2], [2, 0], [0, 0]] },
];

interface PoolCase {
  x: Shape4;
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number;
}

const POOL_CASES: PoolCase[] = [
  { x: [4, 24, 24, 16], filterSize: 2, strides: 2, pad: 'valid' },
  { x: [2, 9, 9, 3], filterSize: 3, strides: 2, pad: 'same' },
  { x: [2, 9, 9, 3], filterSize: 3, strides: 1, pad: 'same' },
  { x: [2, 10, 10, 3], filterSize: 3, strides: 2, pad: 'valid' },
  { x: [1, 7, 7, 2], filterSize: [2, 3], strides: [1, 2], pad: 1 },
];

function describeCase(c: object): string {
  return JSON.stringify(c).replace(/"/g, '');
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

let seed = 1;
function random(shape: number[]): tf.Tensor4D {
  const t: tf.Tensor = tf.randomNormal(shape, 0, 1, 'float32', seed++);
  return t as tf.Tensor4D;
}

/** Small integers with negatives and many ties: the hard case for max pooling. */
function tiedRandom(shape: number[]): tf.Tensor4D {
  const t: tf.Tensor = tf.tidy(() => tf.round(tf.randomUniform(shape, -4, 4, 'float32', seed++)));
  return t as tf.Tensor4D;
}

function relativeError(got: tf.Tensor, want: tf.Tensor): number {
  expect(got.shape).toEqual(want.shape);
  const [g, w] = [got.dataSync(), want.dataSync()];
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < w.length; i++) {
    diff = Math.max(diff, Math.abs(g[i] - w[i]));
    scale = Math.max(scale, Math.abs(w[i]));
  }
  return diff / Math.max(scale, 1e-12);
}

function run(kernel: string, inputs: tf.NamedTensorMap, attrs: object): tf.Tensor {
  return tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

function convInfo(c: ConvCase | DepthwiseCase, depthwise: boolean): Info {
  return tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, c.dilations ?? 1, c.pad, undefined, depthwise, 'channelsLast');
}

async function useBackend(name: string): Promise<void> {
  if (tf.getBackend() !== name) await tf.setBackend(name);
}

beforeAll(async () => {
  setWasmPaths(WASM_DIST);
  await tf.setBackend('wasm');
  await tf.ready();
});

afterAll(() => {
  for (const name of BACKENDS) unregisterTrainingKernels(name);
});

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe('naive references agree with the stock cpu kernels', () => {
  beforeAll(async () => {
    unregisterTrainingKernels('cpu');
    await useBackend('cpu');
  });
  afterAll(() => registerTrainingKernels('cpu'));

  test.each(CONV_CASES.filter((c) => !c.dilations && c.x[0] * c.x[3] * c.filter[3] <= 512))('conv2d %s', (c) => {
    tf.tidy(() => {
      const info = convInfo(c, false);
      const [x, w, dy] = [random(c.x), random(c.filter), random(info.outShape)];
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC' };
      expect(relativeError(run('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: c.filter }), naiveConvFilterGrad(x, dy, info))).toBeLessThan(TOLERANCE);
      expect(relativeError(run('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: c.x }), naiveConvInputGrad(dy, w, info))).toBeLessThan(TOLERANCE);
    });
  });

  // The stock cpu depthwise kernels ignore dilations (unreachable through tfjs gradients, which
  // refuse dilated depthwise convs), so dilated cases are checked against the naive loops only.
  test.each(DEPTHWISE_CASES.filter((c) => !c.dilations))('depthwise %s', (c) => {
    tf.tidy(() => {
      const info = convInfo(c, true);
      const [x, w, dy] = [random(c.x), random(c.filter), random(info.outShape)];
      const attrs = { strides: c.strides, pad: c.pad, dilations: c.dilations ?? 1 };
      expect(relativeError(run('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape: c.filter }), naiveDepthwiseFilterGrad(x, dy, info, c.filter[3]))).toBeLessThan(TOLERANCE);
      expect(relativeError(run('DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, { ...attrs, inputShape: c.x }), naiveDepthwiseInputGrad(dy, w, info, c.filter[3]))).toBeLessThan(TOLERANCE);
    });
  });

  test.each(POOL_CASES)('maxPool %s', (c) => {
    tf.tidy(() => {
      const x = tiedRandom(c.x);
      const y = tf.maxPool(x, c.filterSize, c.strides, c.pad);
      const dy = random(y.shape);
      const info = tf.backend_util.computePool2DInfo(c.x, c.filterSize, c.strides, 1, c.pad);
      const got = run('MaxPoolGrad', { dy, input: x, output: y }, { filterSize: c.filterSize, strides: c.strides, pad: c.pad });
      expect(relativeError(got, naiveMaxPoolGrad(x, dy, info))).toBeLessThan(TOLERANCE);
    });
  });
});

describe.each(BACKENDS)('training kernels on %s', (backend) => {
  beforeAll(async () => {
    registerTrainingKernels(backend);
    await useBackend(backend);
  });

  /** Kernels a backend keeps stock (measured faster there) are not graft's to test. */
  const testIf = (kernel: string) => (TRAINING_KERNELS[backend].includes(kernel) ? test : test.skip);
  const named = <T extends object>(cases: T[]) => cases.map((c) => [describeCase(c), c] as const);

  testIf('Conv2DBackpropFilter').each(named(CONV_CASES))('Conv2DBackpropFilter %s', (_, c) => {
    tf.tidy(() => {
      const info = convInfo(c, false);
      const [x, dy] = [random(c.x), random(info.outShape)];
      const got = run('Conv2DBackpropFilter', { x, dy }, { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dilations: c.dilations, filterShape: c.filter });
      expect(relativeError(got, naiveConvFilterGrad(x, dy, info))).toBeLessThan(TOLERANCE);
    });
  });

  testIf('Conv2DBackpropInput').each(named(CONV_CASES.filter((c) => !c.dilations)))('Conv2DBackpropInput %s', (_, c) => {
    tf.tidy(() => {
      const info = convInfo(c, false);
      const [w, dy] = [random(c.filter), random(info.outShape)];
      const got = run('Conv2DBackpropInput', { dy, filter: w }, { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x });
      expect(relativeError(got, naiveConvInputGrad(dy, w, info))).toBeLessThan(TOLERANCE);
    });
  });

  testIf('DepthwiseConv2dNativeBackpropFilter').each(named(DEPTHWISE_CASES))('DepthwiseConv2dNativeBackpropFilter %s', (_, c) => {
    tf.tidy(() => {
      const info = convInfo(c, true);
      const [x, dy] = [random(c.x), random(info.outShape)];
      const got = run('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { strides: c.strides, pad: c.pad, dilations: c.dilations ?? 1, filterShape: c.filter });
      expect(relativeError(got, naiveDepthwiseFilterGrad(x, dy, info, c.filter[3]))).toBeLessThan(TOLERANCE);
    });
  });

  testIf('DepthwiseConv2dNativeBackpropInput').each(named(DEPTHWISE_CASES))('DepthwiseConv2dNativeBackpropInput %s', (_, c) => {
    tf.tidy(() => {
      const info = convInfo(c, true);
      const [w, dy] = [random(c.filter), random(info.outShape)];
      const got = run('DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, { strides: c.strides, pad: c.pad, dilations: c.dilations ?? 1, inputShape: c.x });
      expect(relativeError(got, naiveDepthwiseInputGrad(dy, w, info, c.filter[3]))).toBeLessThan(TOLERANCE);
    });
  });

  testIf('MaxPoolGrad').each(named(POOL_CASES))('MaxPoolGrad %s (ties and negative maxima)', (_, c) => {
    tf.tidy(() => {
      const x = tiedRandom(c.x);
      const y = tf.maxPool(x, c.filterSize, c.strides, c.pad);
      const dy = random(y.shape);
      const info = tf.backend_util.computePool2DInfo(c.x, c.filterSize, c.strides, 1, c.pad);
      const got = run('MaxPoolGrad', { dy, input: x, output: y }, { filterSize: c.filterSize, strides: c.strides, pad: c.pad });
      expect(relativeError(got, naiveMaxPoolGrad(x, dy, info))).toBeLessThan(TOLERANCE);
    });
  });

  test.each([
    [1, 'valid'],
    [2, 'same'],
  ] as const)('a tiny conv2d layer\'s kernel gradient matches finite differences (stride %d, %s)', (strides, padding) => {
    const layer = tf.layers.conv2d({ filters: 2, kernelSize: 3, strides, padding, activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed: 7 }) });
    const x = random([2, 6, 6, 2]);
    const target = tf.tidy(() => tf.tanh(random((layer.computeOutputShape([2, 6, 6, 2]) as number[]))));
    const loss = () => tf.tidy(() => tf.sum(tf.square(tf.sub(layer.apply(x) as tf.Tensor, target))) as tf.Scalar);
    loss().dispose(); // builds the layer
    const kernel = layer.trainableWeights[0].read() as tf.Variable;
    const { value, grads } = tf.variableGrads(loss, [kernel]);
    const analytic = grads[kernel.name].dataSync();
    const original = Float32Array.from(kernel.dataSync());
    const lossAt = (values: Float32Array) => {
      tf.tidy(() => kernel.assign(tf.tensor(values, kernel.shape)));
      return tf.tidy(() => loss().dataSync()[0]);
    };
    for (let i = 0; i < original.length; i++) {
      const [plus, minus] = [original.slice(), original.slice()];
      plus[i] += FINITE_DIFFERENCE_STEP;
      minus[i] -= FINITE_DIFFERENCE_STEP;
      const numeric = (lossAt(plus) - lossAt(minus)) / (2 * FINITE_DIFFERENCE_STEP);
      expect(Math.abs(numeric - analytic[i])).toBeLessThan(FINITE_DIFFERENCE_TOLERANCE * Math.max(1, Math.abs(numeric)));
    }
    tf.dispose([x, target, value, ...Object.values(grads)]);
    layer.dispose();
  });

  test('repeated calls leak no tensors', () => {
    const c = CONV_CASES[4];
    const info = convInfo(c, false);
    const [x, w, dy] = [random(c.x), random(c.filter), random(info.outShape)];
    const d = DEPTHWISE_CASES[2];
    const dInfo = convInfo(d, true);
    const [dx, dw, ddy] = [random(d.x), random(d.filter), random(dInfo.outShape)];
    const g = CONV_CASES[0]; // one input channel: the depthwise route
    const [gx, gdy] = [random(g.x), random(convInfo(g, false).outShape)];
    const pooled = tf.maxPool(x, 2, 2, 'valid');
    const pdy = random(pooled.shape);
    const callAll = () => [
      run('Conv2DBackpropFilter', { x, dy }, { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: c.filter }),
      run('Conv2DBackpropFilter', { x: gx, dy: gdy }, { strides: g.strides, pad: g.pad, dataFormat: 'NHWC', filterShape: g.filter }),
      run('Conv2DBackpropInput', { dy, filter: w }, { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x }),
      run('DepthwiseConv2dNativeBackpropFilter', { x: dx, dy: ddy }, { strides: d.strides, pad: d.pad, dilations: 1, filterShape: d.filter }),
      run('DepthwiseConv2dNativeBackpropInput', { dy: ddy, filter: dw }, { strides: d.strides, pad: d.pad, dilations: 1, inputShape: d.x }),
      run('MaxPoolGrad', { dy: pdy, input: x, output: pooled }, { filterSize: 2, strides: 2, pad: 'valid' }),
    ];
    tf.dispose(callAll()); // warm-up: lazily created backend state is not a leak
    const before = tf.memory();
    for (let i = 0; i < LEAK_CALLS; i++) tf.dispose(callAll());
    const after = tf.memory();
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numDataBuffers).toBe(before.numDataBuffers);
    expect(after.numBytes).toBe(before.numBytes);
    tf.dispose([x, w, dy, dx, dw, ddy, gx, gdy, pooled, pdy]);
  });

  test('attrs it cannot honour fail with a clear error', () => {
    const x = random([1, 6, 6, 2]);
    const dy = random([1, 4, 4, 3]);
    expect(() => run('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'valid', dataFormat: 'NCHW', filterShape: [3, 3, 2, 3] })).toThrow(/NHWC/);
    expect(() => run('Conv2DBackpropFilter', { x, dy }, { strides: 2, pad: 'same', dataFormat: 'NHWC', dilations: 2, filterShape: [3, 3, 2, 3] })).toThrow(/dilations/);
    tf.dispose([x, dy]);
  });
});

describe('registration', () => {
  test('is idempotent, reversible, and leaves tfjs-node and unknown backends alone', () => {
    for (const backend of BACKENDS) {
      registerTrainingKernels(backend);
      const first = TRAINING_KERNELS[backend].map((k) => tf.getKernel(k, backend)?.kernelFunc);
      registerTrainingKernels(backend);
      expect(TRAINING_KERNELS[backend].map((k) => tf.getKernel(k, backend)?.kernelFunc)).toEqual(first);
    }
    const stockWasmInput = (() => {
      unregisterTrainingKernels('wasm');
      return tf.getKernel('Conv2DBackpropInput', 'wasm')?.kernelFunc;
    })();
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined(); // wasm has none of its own
    expect(stockWasmInput).toBeDefined();
    registerTrainingKernels('wasm');
    expect(tf.getKernel('Conv2DBackpropInput', 'wasm')?.kernelFunc).not.toBe(stockWasmInput);

    for (const backend of ['tensorflow', 'webgl-nope']) {
      registerTrainingKernels(backend);
      expect(tf.getKernelsForBackend(backend)).toHaveLength(0);
    }
  });
});

describe('training on wasm', () => {
  test('a tiny conv net learns: the loss goes down', async () => {
    await useBackend('wasm');
    registerTrainingKernels('wasm');
    const init = (s: number) => tf.initializers.glorotUniform({ seed: s });
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [12, 12, 1], filters: 8, kernelSize: 3, activation: 'relu', kernelInitializer: init(1) }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 1, padding: 'same', depthwiseInitializer: init(2) }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: init(3) }),
      ],
    });
    // Class 1 has a bright blob in the left half, class 0 in the right half.
    const { xs, ys } = tf.tidy(() => {
      const n = 32;
      const labels = Array.from({ length: n }, (_, i) => i % 2);
      const images = labels.map((label, i) => {
        const col = label ? 2 + (i % 3) : 7 + (i % 3);
        const row = 2 + (i % 6);
        return tf.pad(tf.ones([3, 3, 1]), [[row, 12 - row - 3], [col, 12 - col - 3], [0, 0]]);
      });
      return { xs: tf.add(tf.stack(images), random([n, 12, 12, 1]).mul(0.1)), ys: tf.oneHot(tf.tensor1d(labels, 'int32'), 2) };
    });
    const optimizer = tf.train.adam(0.01);
    const losses: number[] = [];
    for (let step = 0; step < 15; step++) {
      const loss = optimizer.minimize(() => tf.mean(tf.metrics.categoricalCrossentropy(ys, model.apply(xs, { training: true }) as tf.Tensor)) as tf.Scalar, true)!;
      losses.push(loss.dataSync()[0]);
      loss.dispose();
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] * 0.5);
    tf.dispose([xs, ys]);
    optimizer.dispose();
    model.dispose();
  });
});

describe('transposed matrix products on wasm', () => {
  test.each([
    [[64, 512], [64, 128], true, false],
    [[64, 10], [512, 10], false, true],
    [[3, 7, 5], [3, 7, 4], true, false],
    [[6, 5], [4, 6], true, true],
  ] as [number[], number[], boolean, boolean][])('%j · %j transposeA=%s transposeB=%s matches the plain product', async (aShape, bShape, ta, tb) => {
    await useBackend('wasm');
    registerTrainingKernels('wasm');
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const a = random(aShape);
      const b = random(bShape);
      const perm = (t: tf.Tensor) => t.shape.map((_, i, all) => (i < all.length - 2 ? i : i === all.length - 2 ? all.length - 1 : all.length - 2));
      const expected = tf.matMul(ta ? tf.transpose(a, perm(a)) : a, tb ? tf.transpose(b, perm(b)) : b);
      expect(relativeError(tf.matMul(a, b, ta, tb), expected)).toBeLessThan(TOLERANCE);
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});
