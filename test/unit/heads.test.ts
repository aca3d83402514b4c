import Ajv from 'ajv';
import { checkSpec } from '../../src/spec/check';
import { HEAD_FIELDS, HEAD_LAYER_TYPES, HEAD_TYPES, headLayerPlan } from '../../src/spec/heads';
import { topologyLayerNames, topologyLayers } from '../../src/spec/keras-topology';
import { HeadLayerSchema, type HeadLayerSpec, type JobSpec } from '../../src/spec/schema';
import { validateSpec } from '../../src/spec/validate';

const transfer = (head: HeadLayerSpec[]): JobSpec => ({
  type: 'transfer',
  source: { checkpoint: 'cae' },
  model: { cut: 'enc_flatten', head },
  dataset: { name: 'digits' },
  output: { checkpoint: 'out' },
});

const problems = (head: HeadLayerSpec[]) => checkSpec(transfer(head)).map((e) => [e.code, e.param]);

describe('head layer registry', () => {
  it('builds the schema from the registered types: their names, and each field once', () => {
    expect(HEAD_LAYER_TYPES).toEqual(HEAD_TYPES.map((h) => h.type));
    expect(HEAD_LAYER_TYPES).toContain('layerNormalization');
    const schema = HeadLayerSchema as unknown as { properties: Record<string, unknown> };
    expect(Object.keys(schema.properties)).toEqual(['type', 'name', ...Object.keys(HEAD_FIELDS)]);
    expect(Object.keys(HEAD_FIELDS)).toEqual(['units', 'activation', 'useBias', 'rate', 'momentum', 'epsilon']);
    const valid = new Ajv({ strict: false }).compile(HeadLayerSchema);
    expect(valid({ type: 'layerNormalization', epsilon: 0.01 })).toBe(true);
    expect(valid({ type: 'layerNormalization', epsilon: 0 })).toBe(false);
    expect(valid({ type: 'conv9d' })).toBe(false);
  });

  it('requires each type\'s required fields and rejects fields of other types, in registry order', () => {
    expect(problems([{ type: 'dense' }])).toEqual([['missing_field', '/model/head/0/units']]);
    expect(problems([{ type: 'dropout', units: 3, rate: undefined, momentum: 0.9 }])).toEqual([
      ['invalid_field', '/model/head/0/units'],
      ['missing_field', '/model/head/0/rate'],
      ['invalid_field', '/model/head/0/momentum'],
    ]);
    expect(problems([{ type: 'dense', units: 4, epsilon: 0.1 }])).toEqual([['invalid_field', '/model/head/0/epsilon']]);
    expect(checkSpec(transfer([{ type: 'layerNormalization', rate: 0.5 }]))[0].message).toBe('`rate` does not apply to a layerNormalization layer.');
    expect(problems([{ type: 'layerNormalization', epsilon: 0.01 }, { type: 'dense', units: 10, activation: 'softmax' }])).toEqual([]);
  });

  it('the worker\'s re-check accepts a layerNormalization head and rejects a stray field', () => {
    expect((validateSpec(transfer([{ type: 'layerNormalization' }, { type: 'dense', units: 10 }])) as JobSpec).model?.head?.[0].type).toBe('layerNormalization');
    expect(() => validateSpec(transfer([{ type: 'layerNormalization', units: 3 }]))).toThrow('`units` does not apply to a layerNormalization layer.');
  });

  it('translates each head layer into a TensorFlow.js class and config as data', () => {
    expect(headLayerPlan({ type: 'dense', units: 3 }, 'fc')).toEqual({ name: 'fc', className: 'Dense', config: { units: 3, activation: 'linear', useBias: true } });
    expect(headLayerPlan({ type: 'batchNormalization' }, 'bn')).toEqual({ name: 'bn', className: 'BatchNormalization', config: {} });
    expect(headLayerPlan({ type: 'layerNormalization', epsilon: 0.01 }, 'ln')).toEqual({ name: 'ln', className: 'LayerNormalization', config: { epsilon: 0.01 } });
  });
});

describe('Keras topology layer names', () => {
  const sequential = { class_name: 'Sequential', config: { name: 's', layers: [{ class_name: 'Dense', config: { name: 'a' } }, { class_name: 'Dense', config: { name: 'b' } }] } };

  it('looks through the modelTopology and model_config wrappers', () => {
    expect(topologyLayerNames(sequential)).toEqual(['a', 'b']);
    expect(topologyLayerNames({ modelTopology: sequential })).toEqual(['a', 'b']);
    expect(topologyLayerNames({ modelTopology: { model_config: sequential } })).toEqual(['a', 'b']);
    expect(topologyLayerNames({ model_config: sequential })).toEqual(['a', 'b']);
  });

  it('reads old Keras lists and Functional entries named outside their config; refuses partial lists', () => {
    expect(topologyLayerNames({ class_name: 'Sequential', config: [{ class_name: 'Dense', config: { name: 'x' } }] })).toEqual(['x']);
    expect(topologyLayers({ class_name: 'Model', config: { layers: [{ class_name: 'InputLayer', name: 'in', config: {} }] } })).toEqual([{ name: 'in', className: 'InputLayer', config: {} }]);
    expect(topologyLayerNames({ class_name: 'Sequential', config: { layers: [{ class_name: 'Dense', config: {} }] } })).toBeNull();
    expect(topologyLayerNames({ class_name: 'Sequential' })).toBeNull();
  });
});
