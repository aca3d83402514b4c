import { Type } from 'typebox';
import { defineHead } from './head-type';

export const layerNormalization = defineHead({
  type: 'layerNormalization',
  description: 'normalises each sample over its last axis (`epsilon`)',
  fields: {
    epsilon: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'layerNormalization: added to the variance (default 0.001).' })),
  },
  required: [],
  plan: (layer) => ({ className: 'LayerNormalization', config: layer.epsilon === undefined ? {} : { epsilon: layer.epsilon } }),
});
