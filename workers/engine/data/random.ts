import { UnprocessableError, ValidationError } from '../../../src/errors';

/**
 * Seeded randomness for everything data-related (splits, shuffling). Math.random cannot be
 * seeded, and a job must reproduce exactly from its seed, also after a resume: so the state
 * is four uint32 that can be stored in a checkpoint and restored.
 *
 * Generator: xoshiro128** (Blackman & Vigna), 32-bit friendly and fast in JS; seeded through
 * splitmix32 so that nearby seeds (0, 1, 2...) give unrelated streams.
 */

export type RandomState = [number, number, number, number];

const UINT32_RANGE = 0x1_0000_0000;
const GOLDEN_GAMMA = 0x9e3779b9;

function splitmix32(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + GOLDEN_GAMMA) | 0;
    let t = s ^ (s >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    return (t ^ (t >>> 15)) >>> 0;
  };
}

const rotl = (x: number, k: number) => (x << k) | (x >>> (32 - k));

export class Random {
  private readonly s = new Uint32Array(4);

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`A seed must be an integer, got ${seed}.`);
    const next = splitmix32(seed);
    for (let i = 0; i < 4; i++) this.s[i] = next();
  }

  /** A generator that continues exactly where the one whose `state()` was saved stopped. */
  static fromState(state: readonly number[]): Random {
    const valid = state.length === 4 && state.every((v) => Number.isInteger(v) && v >= 0 && v < UINT32_RANGE);
    if (!valid || state.every((v) => v === 0)) {
      throw new RangeError(`A random state is four uint32, not all zero; got ${JSON.stringify(state)}.`);
    }
    const r = new Random(0);
    r.s.set(state);
    return r;
  }

  /** Plain numbers, so the state survives JSON (checkpoint manifests, Redis). */
  state(): RandomState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]];
  }

  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / UINT32_RANGE;
  }

  /** Uniform integer in [0, n), without modulo bias (n ≤ 2^32). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > UINT32_RANGE) throw new RangeError(`int(n) needs an integer 1..2^32, got ${n}.`);
    const limit = UINT32_RANGE - (UINT32_RANGE % n);
    let x: number;
    do x = this.nextUint32();
    while (x >= limit);
    return x % n;
  }
}

/** Fisher–Yates: every permutation equally likely, same permutation for the same generator state. */
export function shuffleInPlace<T extends { length: number; [i: number]: unknown }>(array: T, rng: Random): T {
  for (let i = array.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}

export interface SplitIndices {
  trainIdx: Int32Array;
  valIdx: Int32Array;
}

const SPLIT_PARAM = '/dataset/validationSplit';

/**
 * Holds out `fraction` of the samples for validation, class by class, so every class keeps its
 * share (same idea as scikit-learn's stratified split):
 *  - the validation size is round(n * fraction), distributed over classes by largest remainder,
 *  - a class with at least 2 samples keeps at least 1 in training (a class with 1 stays in training),
 *  - which samples are held out is drawn from `seed`; both index lists come back sorted ascending.
 * `numClasses` defaults to the largest label + 1.
 */
export function stratifiedSplit(labels: ArrayLike<number>, fraction: number, seed: number, numClasses?: number): SplitIndices {
  if (!(fraction >= 0 && fraction < 1)) {
    throw new ValidationError('invalid_validation_split', `The validation split must be at least 0 and below 1, got ${fraction}.`, SPLIT_PARAM);
  }
  const byClass = groupByClass(labels, numClasses);
  const n = labels.length;
  const valCounts = allocate(byClass.map((idx) => idx.length), Math.round(n * fraction));
  const valTotal = valCounts.reduce((a, b) => a + b, 0);
  if (fraction > 0 && valTotal === 0) {
    throw new UnprocessableError(
      'dataset_split_empty',
      `A validation split of ${fraction} of ${n} samples holds out no sample: use more data or a larger validationSplit (a class keeps at least one training sample).`,
      SPLIT_PARAM,
    );
  }

  const rng = new Random(seed);
  const trainIdx = new Int32Array(n - valTotal);
  const valIdx = new Int32Array(valTotal);
  let t = 0;
  let v = 0;
  byClass.forEach((idx, c) => {
    shuffleInPlace(idx, rng);
    valIdx.set(idx.subarray(0, valCounts[c]), v);
    trainIdx.set(idx.subarray(valCounts[c]), t);
    v += valCounts[c];
    t += idx.length - valCounts[c];
  });
  return { trainIdx: trainIdx.sort(), valIdx: valIdx.sort() };
}

/** Sample indices per class; rejects labels that are not a class index. */
function groupByClass(labels: ArrayLike<number>, numClasses?: number): Int32Array[] {
  if (labels.length === 0) throw new UnprocessableError('dataset_split_empty', 'There are no samples to split.', '/dataset/name');
  let max = 0;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!Number.isInteger(l) || l < 0 || (numClasses !== undefined && l >= numClasses)) {
      const range = numClasses === undefined ? 'a non-negative integer' : `0..${numClasses - 1}`;
      throw new UnprocessableError('dataset_invalid', `Sample ${i} has label ${l}; labels must be ${range} (a class index).`);
    }
    if (l > max) max = l;
  }
  const counts = new Int32Array(numClasses ?? max + 1);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  const groups = Array.from(counts, (c) => new Int32Array(c));
  const fill = new Int32Array(counts.length);
  for (let i = 0; i < labels.length; i++) groups[labels[i]][fill[labels[i]]++] = i;
  return groups;
}

/**
 * Largest-remainder apportionment of `total` over classes of the given sizes: each class gets the
 * floor or the ceiling of its exact share, capped at size - 1. When caps bind (tiny classes) the
 * total comes out smaller rather than pushing other classes past their share.
 */
function allocate(sizes: number[], total: number): number[] {
  const n = sizes.reduce((a, b) => a + b, 0);
  const cap = sizes.map((s) => Math.max(0, s - 1));
  const quota = sizes.map((s) => (s * total) / n);
  const out = quota.map((q, c) => Math.min(Math.floor(q), cap[c]));
  let left = total - out.reduce((a, b) => a + b, 0);
  // Biggest remainder first; ties go to the lower class index so the result is deterministic.
  const order = sizes.map((_, c) => c).sort((a, b) => quota[b] - out[b] - (quota[a] - out[a]) || a - b);
  for (const c of order) {
    if (left === 0) break;
    if (out[c] < cap[c] && out[c] < quota[c]) {
      out[c]++;
      left--;
    }
  }
  return out;
}
