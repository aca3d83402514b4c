import { GraftError } from '../../src/errors';
import { isValidLayerName } from '../../src/spec/layer-names';
import { compileUserRegex } from '../../src/spec/regex';

const refusal = (source: string): GraftError => {
  try {
    compileUserRegex(source, '/freeze');
  } catch (err) {
    return err as GraftError;
  }
  throw new Error(`${source} compiled`);
};

describe('compileUserRegex (RE2 semantics)', () => {
  it('matches anywhere in the name, like RegExp#test', () => {
    const re = compileUserRegex('conv', '/freeze');
    expect(re.test('enc_conv1')).toBe(true);
    expect(re.test('enc_pool1')).toBe(false);
    expect(compileUserRegex('^enc_', '/freeze').test('dec_enc_x')).toBe(false);
    expect(compileUserRegex('/kernel$', '/freeze').test('fc/kernel')).toBe(true);
    expect(compileUserRegex('/kernel$', '/freeze').test('fc/kernel/x')).toBe(false);
    expect(compileUserRegex('^(enc|dec)_conv[0-9]+$', '/freeze').test('dec_conv12')).toBe(true);
    expect(compileUserRegex('.*', '/freeze').source).toBe('.*');
  });

  it('agrees with JavaScript on the patterns users write', () => {
    const names = ['enc_conv1', 'enc_conv1/kernel', 'block_13_expand_BN', 'conv_pw_13', 'dense', 'Conv1', 'head_0_dense', 'x.y:0'];
    for (const p of ['^enc', 'conv\\d+', '^block_1[0-3]_', '(?i)^conv1$', '_BN$', '^(dense|head_.*)$', '[.:]', '\\bconv', 'pw_\\d{2}$']) {
      const re = compileUserRegex(p, '/freeze');
      const js = new RegExp(p.replace('(?i)', ''), p.startsWith('(?i)') ? 'i' : '');
      for (const n of names) expect([p, n, re.test(n)]).toEqual([p, n, js.test(n)]);
    }
  });

  it('is linear: nested quantifiers over a long name return at once', () => {
    const name = `${'a'.repeat(100_000)}!`;
    for (const p of ['(a+)+$', '(a|aa)+$', '(a*)*b', '^(\\w+\\s?)*$']) {
      const started = Date.now();
      expect(compileUserRegex(p, '/freeze').test(name)).toBe(false);
      expect(Date.now() - started).toBeLessThan(500);
    }
  });

  it.each([
    ['^(?!dec_)', 'lookahead', '^(enc|mid)_'],
    ['enc(?=_conv)', 'lookahead', '`|`'],
    ['(?<=enc_)conv', 'lookbehind', 'preceding text'],
    ['(?<!dec_)conv', 'lookbehind', 'preceding text'],
    ['(conv)\\1', 'backreference', 'spell the repeated text out'],
    ['(?<n>conv)\\k<n>', 'backreference', 'spell the repeated text out'],
    ['(?>enc)', 'atomic group', '(?:'],
    ['conv\\d++', 'possessive', 'plain quantifier'],
    ['\\u0041', '\\uXXXX', '\\x{XXXX}'],
    ['a{1001}', 'above 1000', 'up to 1000'],
  ])('%s: regex_unsupported naming the construct (%s) and what to write', (source, construct, instead) => {
    const err = refusal(source);
    expect(err.code).toBe('regex_unsupported');
    expect(err.statusCode).toBe(400);
    expect(err.param).toBe('/freeze');
    expect(err.message).toContain(construct);
    expect(err.message).toContain(instead);
  });

  it.each(['(', '[a-', '*', 'a{2,1}', '(?<x', '\\'])('%s: invalid_regex', (source) => {
    const err = refusal(source);
    expect(err.code).toBe('invalid_regex');
    expect(err.message).toContain(JSON.stringify(source));
  });

  it('keeps the length cap', () => {
    expect(refusal('a'.repeat(300)).code).toBe('invalid_regex');
  });
});

describe('layer names', () => {
  it.each(['enc_conv1', 'block_1_expand', 'conv_pw_1/bn', '_private', 'a.b:0', 'x'.repeat(128)])('accepts %s', (name) => {
    expect(isValidLayerName(name)).toBe(true);
  });
  it.each(['', ' ', 'with space', 'ümlaut', 'a\nb', '-lead', 'x'.repeat(129), 'a!'])('refuses %j', (name) => {
    expect(isValidLayerName(name)).toBe(false);
  });
});
