import { Type } from 'typebox';
import { defineHead } from './head-type';

export const dropout = defineHead({
  type: 'dropout',
  description: 'drops a fraction `rate` of its inputs while training (seeded)',
  fields: {
    rate: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 1, description: 'dropout: fraction dropped (required for dropout).' })),
  },
  required: ['rate'],
  plan: (layer) => ({ className: 'Dropout', config: { rate: layer.rate } }),
});
