import { GraftError } from '../../src/errors';
import { planArchitecture } from '../../src/spec/architectures';
import { checkSpec } from '../../src/spec/check';
import type { JobSpec } from '../../src/spec/schema';
import { compileLrMultipliers, frozenErrors, lrMultiplierFor, planRestore, selectFrozen } from '../../src/spec/selection';

const SOURCE = [
  { name: 'enc_conv1/kernel', shape: [5, 5, 1, 16] },
  { name: 'enc_conv1/bias', shape: [16] },
  { name: 'enc_conv2/kernel', shape: [5, 5, 16, 32] },
  { name: 'enc_conv2/bias', shape: [32] },
  { name: 'dec_deconv1/kernel', shape: [5, 5, 1, 16] },
];

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as GraftError).code;
  }
  return null;
};

describe('planRestore', () => {
  const target = [...SOURCE.slice(0, 4), { name: 'fc/kernel', shape: [512, 10] }, { name: 'fc/bias', shape: [10] }];

  it('restores what the regex selects and the target has, skips the rest', () => {
    const plan = planRestore(SOURCE, target, '^enc_conv|^dec_');
    expect(plan.restored).toEqual(['enc_conv1/kernel', 'enc_conv1/bias', 'enc_conv2/kernel', 'enc_conv2/bias']);
    expect(plan.skipped).toEqual(['dec_deconv1/kernel']);
    expect(plan.mismatched).toEqual([]);
  });

  it('selects by <layer>/<weight> names, e.g. only kernels', () => {
    expect(planRestore(SOURCE, target, '/kernel$').restored).toEqual(['enc_conv1/kernel', 'enc_conv2/kernel']);
  });

  it('reports same-name weights of another shape as shape_mismatch listing them', () => {
    const other = target.map((w) => (w.name === 'enc_conv2/kernel' ? { ...w, shape: [3, 3, 16, 32] } : w));
    try {
      planRestore(SOURCE, other, '^enc');
      throw new Error('expected shape_mismatch');
    } catch (err) {
      expect((err as GraftError).code).toBe('shape_mismatch');
      expect((err as GraftError).message).toContain('enc_conv2/kernel (source 5x5x16x32, target 3x3x16x32)');
      expect((err as GraftError).details).toEqual([{ name: 'enc_conv2/kernel', sourceShape: [5, 5, 16, 32], targetShape: [3, 3, 16, 32] }]);
    }
  });

  it('refuses a regex that selects nothing, or nothing the target has', () => {
    expect(codeOf(() => planRestore(SOURCE, target, '^nothing'))).toBe('restore_matches_nothing');
    expect(codeOf(() => planRestore(SOURCE, target, '^dec_'))).toBe('restore_matches_nothing');
  });

  it('refuses invalid regexes and constructs RE2 cannot express', () => {
    expect(codeOf(() => planRestore(SOURCE, target, '(enc'))).toBe('invalid_regex');
    expect(codeOf(() => planRestore(SOURCE, target, '^(?!dec_)'))).toBe('regex_unsupported');
    expect(codeOf(() => planRestore(SOURCE, target, '(enc)_conv\\1'))).toBe('regex_unsupported');
  });

  it('runs a catastrophic-for-backtracking pattern over long names in linear time', () => {
    const long = [{ name: `${'a'.repeat(50_000)}!`, shape: [1] }];
    const started = Date.now();
    expect(codeOf(() => planRestore(long, long, '^(a+)+$'))).toBe('restore_matches_nothing');
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('selectFrozen', () => {
  const layers = ['enc_conv1', 'enc_pool1', 'enc_conv2', 'enc_flatten', 'fc'];
  it('takes a regex or a list', () => {
    expect(selectFrozen(layers, '^enc_conv')).toEqual(['enc_conv1', 'enc_conv2']);
    expect(selectFrozen(layers, ['enc_conv2', 'enc_conv1'])).toEqual(['enc_conv1', 'enc_conv2']);
    expect(selectFrozen(layers, undefined)).toEqual([]);
  });
  it('rejects unknown names and empty matches with the offending pointer', () => {
    try {
      selectFrozen(layers, ['enc_conv1', 'nope']);
      throw new Error('expected unknown_layer');
    } catch (err) {
      expect((err as GraftError).code).toBe('unknown_layer');
      expect((err as GraftError).param).toBe('/freeze/1');
    }
    expect(codeOf(() => selectFrozen(layers, '^dec'))).toBe('freeze_matches_nothing');
  });
  it('lists every unknown name for a plan', () => {
    expect(frozenErrors(layers, ['x', 'fc', 'y']).map((e) => [e.code, e.param])).toEqual([
      ['unknown_layer', '/freeze/0'],
      ['unknown_layer', '/freeze/2'],
    ]);
  });
});

describe('lrMultipliers', () => {
  it('first matching rule wins, unmatched layers train at 1', () => {
    const rules = compileLrMultipliers({ '^enc_conv1$': 0.01, '^enc_': 0.1 });
    expect(lrMultiplierFor('enc_conv1', rules)).toBe(0.01);
    expect(lrMultiplierFor('enc_conv2', rules)).toBe(0.1);
    expect(lrMultiplierFor('fc', rules)).toBe(1);
  });
});

describe('planArchitecture', () => {
  it('builds the conv autoencoder with the contract layer names and a mirrored decoder', () => {
    const plan = planArchitecture('conv-autoencoder', {}, [28, 28, 1], 10);
    const names = plan.layers.map((l) => l.name);
    expect(names.slice(0, 5)).toEqual(['enc_conv1', 'enc_pool1', 'enc_conv2', 'enc_pool2', 'enc_flatten']);
    expect(names).toContain('enc_code');
    expect(names[names.length - 1]).toBe('dec_deconv1');
    expect(plan.task).toBe('reconstruction');
  });
  it('refuses input sizes the decoder cannot mirror', () => {
    expect(codeOf(() => planArchitecture('conv-autoencoder', {}, [30, 30, 1], 10))).toBe('architecture_shape_mismatch');
    expect(codeOf(() => planArchitecture('conv-autoencoder', { filters: [8, 8, 8, 8] }, [28, 28, 1], 10))).toBe('architecture_too_deep');
  });
  it('builds a classifier ending in one unit per class', () => {
    const plan = planArchitecture('conv-classifier', { units: 64 }, [28, 28, 1], 7);
    expect(plan.layers[plan.layers.length - 1]).toMatchObject({ name: 'fc', config: { units: 7, activation: 'softmax' } });
  });
});

describe('checkSpec', () => {
  const base: JobSpec = { type: 'pretrain', model: { architecture: 'conv-autoencoder' }, dataset: { name: 'mnist' }, output: { checkpoint: 'cae' } };
  it('accepts a minimal pretrain spec', () => {
    expect(checkSpec(base)).toEqual([]);
  });
  it('reports every problem, not only the first', () => {
    const errors = checkSpec({ ...base, source: { checkpoint: 'x' }, freeze: '(', training: { lrMultipliers: { '[': 1 } } });
    expect(errors.map((e) => e.param)).toEqual(['/source', '/freeze', '/training/lrMultipliers/[']);
  });
});
