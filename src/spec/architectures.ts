import { UnprocessableError } from '../errors';
import type { ArchitectureOptions } from './schema';

/**
 * Built-in networks as plain layer plans (no TensorFlow here), so the API can know their layer
 * names at submission time and the worker builds exactly the same thing. Layer names are part of
 * the contract: a transfer job restores `^enc_conv` from a conv-autoencoder checkpoint.
 */
export interface LayerPlan {
  name: string;
  /** TensorFlow.js layer class name. */
  className: 'Conv2D' | 'MaxPooling2D' | 'Flatten' | 'Dense' | 'Reshape' | 'UpSampling2D' | 'Conv2DTranspose';
  config: Record<string, unknown>;
}

export interface ArchitecturePlan {
  inputShape: [number, number, number];
  layers: LayerPlan[];
  task: 'classification' | 'reconstruction';
}

export const DEFAULT_FILTERS = [16, 32];
export const DEFAULT_KERNEL_SIZE = 5;
export const DEFAULT_BOTTLENECK = 64;
const POOL = 2;

interface EncoderShape {
  layers: LayerPlan[];
  /** Spatial shape after each encoder stage, for mirroring. */
  stages: { size: [number, number]; channels: number }[];
}

function encoder(inputShape: [number, number, number], filters: number[], kernelSize: number): EncoderShape {
  const layers: LayerPlan[] = [];
  const stages: EncoderShape['stages'] = [];
  let [h, w] = inputShape;
  filters.forEach((f, i) => {
    const n = i + 1;
    // 'valid' padding: the classic MNIST encoder (28→24→12→8→4) and 2.7x less work than 'same'.
    h = h - kernelSize + 1;
    w = w - kernelSize + 1;
    if (h < POOL || w < POOL) {
      throw new UnprocessableError(
        'architecture_too_deep',
        `Input ${inputShape.join('x')} is too small for ${filters.length} conv stages with kernel ${kernelSize}; use fewer filters or a smaller kernelSize.`,
        '/model/options',
      );
    }
    layers.push({ name: `enc_conv${n}`, className: 'Conv2D', config: { filters: f, kernelSize, padding: 'valid', activation: 'relu' } });
    layers.push({ name: `enc_pool${n}`, className: 'MaxPooling2D', config: { poolSize: POOL } });
    h = Math.floor(h / POOL);
    w = Math.floor(w / POOL);
    stages.push({ size: [h, w], channels: f });
  });
  layers.push({ name: 'enc_flatten', className: 'Flatten', config: {} });
  return { layers, stages };
}

export function planArchitecture(
  architecture: 'conv-autoencoder' | 'conv-classifier',
  options: ArchitectureOptions,
  inputShape: [number, number, number],
  numClasses: number,
): ArchitecturePlan {
  const filters = options.filters ?? DEFAULT_FILTERS;
  const kernelSize = options.kernelSize ?? DEFAULT_KERNEL_SIZE;
  const { layers, stages } = encoder(inputShape, filters, kernelSize);

  if (architecture === 'conv-classifier') {
    if (options.units) layers.push({ name: 'fc_hidden', className: 'Dense', config: { units: options.units, activation: 'relu' } });
    layers.push({ name: 'fc', className: 'Dense', config: { units: numClasses, activation: 'softmax' } });
    return { inputShape, layers, task: 'classification' };
  }

  const last = stages[stages.length - 1];
  const flat = last.size[0] * last.size[1] * last.channels;
  const bottleneck = options.bottleneck ?? DEFAULT_BOTTLENECK;
  if (bottleneck > 0) {
    layers.push({ name: 'enc_code', className: 'Dense', config: { units: bottleneck, activation: 'relu' } });
    layers.push({ name: 'dec_dense', className: 'Dense', config: { units: flat, activation: 'relu' } });
  }
  layers.push({ name: 'dec_reshape', className: 'Reshape', config: { targetShape: [last.size[0], last.size[1], last.channels] } });
  let [h, w] = last.size;
  for (let i = filters.length; i >= 1; i--) {
    const outChannels = i > 1 ? filters[i - 2] : inputShape[2];
    layers.push({ name: `dec_up${i}`, className: 'UpSampling2D', config: { size: [POOL, POOL] } });
    layers.push({
      name: `dec_deconv${i}`,
      className: 'Conv2DTranspose',
      // The last layer reconstructs pixels in [0, 1]: sigmoid + binary cross-entropy.
      config: { filters: outChannels, kernelSize, padding: 'valid', activation: i > 1 ? 'relu' : 'sigmoid' },
    });
    h = h * POOL + kernelSize - 1;
    w = w * POOL + kernelSize - 1;
  }
  if (h !== inputShape[0] || w !== inputShape[1]) {
    throw new UnprocessableError(
      'architecture_shape_mismatch',
      `The conv-autoencoder would reconstruct ${h}x${w} from a ${inputShape[0]}x${inputShape[1]} input; pick an input size that survives the pooling evenly (e.g. 28 or 32 with kernelSize 5).`,
      '/model/options',
    );
  }
  return { inputShape, layers, task: 'reconstruction' };
}
