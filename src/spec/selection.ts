import { GraftError, UnprocessableError } from '../errors';
import { escapePointer } from './check';
import { compileUserRegex, type UserRegex } from './regex';

/**
 * Which weights to restore, which layers to freeze, which learning rate each layer gets.
 * Pure functions over names and shapes (no TensorFlow), so they are unit-tested exhaustively.
 */
export interface NamedShape {
  name: string;
  shape: number[];
}

export interface Mismatch {
  name: string;
  sourceShape: number[];
  targetShape: number[];
}

export interface RestorePlan {
  /** Selected by the regex and present in the target with the same shape. */
  restored: string[];
  /** Selected by the regex but absent from the target (e.g. the decoder when cutting an autoencoder). */
  skipped: string[];
  mismatched: Mismatch[];
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

export function planRestore(source: NamedShape[], target: NamedShape[], restore: string): RestorePlan {
  const re = compileUserRegex(restore, '/source/restore');
  const targetByName = new Map(target.map((w) => [w.name, w.shape]));
  const plan: RestorePlan = { restored: [], skipped: [], mismatched: [] };
  const selected = source.filter((w) => re.test(w.name));
  if (selected.length === 0) {
    throw new UnprocessableError(
      'restore_matches_nothing',
      `The restore regex ${JSON.stringify(restore)} selects no source weight; source weights are named like ${source.slice(0, 6).map((w) => w.name).join(', ')}.`,
      '/source/restore',
    );
  }
  for (const w of selected) {
    const targetShape = targetByName.get(w.name);
    if (!targetShape) plan.skipped.push(w.name);
    else if (sameShape(targetShape, w.shape)) plan.restored.push(w.name);
    else plan.mismatched.push({ name: w.name, sourceShape: w.shape, targetShape });
  }
  if (plan.mismatched.length > 0) {
    const list = plan.mismatched.map((m) => `${m.name} (source ${m.sourceShape.join('x')}, target ${m.targetShape.join('x')})`).join('; ');
    throw new UnprocessableError(
      'shape_mismatch',
      `These weights exist in both networks with different shapes: ${list}. Exclude them from source.restore or change the target layers.`,
      '/source/restore',
      plan.mismatched,
    );
  }
  if (plan.restored.length === 0) {
    throw new UnprocessableError(
      'restore_matches_nothing',
      `The restore regex ${JSON.stringify(restore)} selects only weights the target network does not have (${plan.skipped.slice(0, 6).join(', ')}).`,
      '/source/restore',
    );
  }
  return plan;
}

/**
 * Every problem with `freeze` against these layer names (all unknown names, or a regex matching
 * nothing), so a plan can list them all; selectFrozen throws the first.
 */
export function frozenErrors(layerNames: string[], freeze: string | string[] | undefined): GraftError[] {
  if (freeze === undefined) return [];
  const known = `layers: ${layerNames.join(', ')}`;
  if (Array.isArray(freeze)) {
    return freeze.flatMap((name, i) =>
      layerNames.includes(name) ? [] : [new UnprocessableError('unknown_layer', `Cannot freeze "${name}": the target network has no such layer (${known}).`, `/freeze/${i}`)],
    );
  }
  const re = compileUserRegex(freeze, '/freeze');
  return layerNames.some((n) => re.test(n)) ? [] : [new UnprocessableError('freeze_matches_nothing', `The freeze regex ${JSON.stringify(freeze)} matches no layer (${known}).`, '/freeze')];
}

/** Layer names selected by `freeze` (a regex or a list); unknown names and empty matches are errors. */
export function selectFrozen(layerNames: string[], freeze: string | string[] | undefined): string[] {
  const [first] = frozenErrors(layerNames, freeze);
  if (first) throw first;
  if (freeze === undefined) return [];
  if (Array.isArray(freeze)) return layerNames.filter((n) => freeze.includes(n));
  const re = compileUserRegex(freeze, '/freeze');
  return layerNames.filter((n) => re.test(n));
}

export interface LrRule {
  pattern: UserRegex;
  multiplier: number;
}

export function compileLrMultipliers(multipliers: Record<string, number> | undefined): LrRule[] {
  return Object.entries(multipliers ?? {}).map(([pattern, multiplier]) => ({
    pattern: compileUserRegex(pattern, `/training/lrMultipliers/${escapePointer(pattern)}`),
    multiplier,
  }));
}

/** First matching rule wins; layers no rule matches train at the base rate. */
export function lrMultiplierFor(layerName: string, rules: LrRule[]): number {
  return rules.find((r) => r.pattern.test(layerName))?.multiplier ?? 1;
}
