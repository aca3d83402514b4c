import { defineHead } from './head-type';

export const globalAveragePooling2d = defineHead({
  type: 'globalAveragePooling2d',
  description: 'averages each channel of a feature map',
  fields: {},
  required: [],
  plan: () => ({ className: 'GlobalAveragePooling2D', config: {} }),
});
