import { defineHead } from './head-type';

export const flatten = defineHead({
  type: 'flatten',
  description: 'flattens a feature map into a vector',
  fields: {},
  required: [],
  plan: () => ({ className: 'Flatten', config: {} }),
});
