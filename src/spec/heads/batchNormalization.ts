import { Type } from 'typebox';
import { defineHead } from './head-type';

export const batchNormalization = defineHead({
  type: 'batchNormalization',
  description: 'normalises each channel over the batch (`momentum`)',
  fields: {
    momentum: Type.Optional(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: 'batchNormalization: moving-average momentum (default 0.99).' })),
  },
  required: [],
  plan: (layer) => ({ className: 'BatchNormalization', config: layer.momentum === undefined ? {} : { momentum: layer.momentum } }),
});
