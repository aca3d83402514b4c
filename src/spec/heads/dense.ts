import { Type } from 'typebox';
import { defineHead } from './head-type';

export const ACTIVATIONS = ['linear', 'relu', 'relu6', 'elu', 'selu', 'sigmoid', 'softmax', 'softplus', 'tanh', 'swish'] as const;

export const dense = defineHead({
  type: 'dense',
  description: 'a fully connected layer (`units`, `activation`, `useBias`)',
  fields: {
    units: Type.Optional(Type.Integer({ minimum: 1, maximum: 65536, description: 'dense: output units (required for dense).' })),
    activation: Type.Optional(Type.Enum([...ACTIVATIONS], { description: 'dense: activation (default linear).' })),
    useBias: Type.Optional(Type.Boolean({ description: 'dense: add a bias (default true).' })),
  },
  required: ['units'],
  plan: (layer) => ({ className: 'Dense', config: { units: layer.units, activation: layer.activation ?? 'linear', useBias: layer.useBias ?? true } }),
});
