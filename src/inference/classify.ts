import type { Classification } from './protocol';

/**
 * Each row's most probable class and its `top` best classes, most probable first: `count` rows of
 * `rowSize` probabilities in `data`. Pure, so the API answers packed requests itself from the
 * inference process's raw outputs, and the inference process uses it for the rest.
 */
export function classify(data: Float32Array, rowSize: number, count: number, labels: string[], top: number): Classification[] {
  const k = Math.max(1, Math.min(top, rowSize));
  const out: Classification[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const row = data.subarray(i * rowSize, (i + 1) * rowSize);
    const ranked = topClasses(row, k).map((c) => ({ label: labels[c] ?? String(c), probability: row[c] }));
    out[i] = { ...ranked[0], top: ranked.slice(0, Math.min(top, rowSize)) };
  }
  return out;
}

/** Partial selection for a few classes (k passes over the row), a full sort for many. */
const SELECTION_MAX_K = 16;

function topClasses(row: Float32Array, k: number): number[] {
  if (k > SELECTION_MAX_K) return Array.from(row.keys()).sort((a, b) => row[b] - row[a]).slice(0, k);
  const order: number[] = [];
  for (let j = 0; j < k; j++) {
    let best = -1;
    for (let c = 0; c < row.length; c++) if ((best < 0 || row[c] > row[best]) && !order.includes(c)) best = c;
    order.push(best);
  }
  return order;
}

/** `count` rows of `rowSize` floats as number arrays (raw outputs, embeddings). */
export function rowsOf(data: Float32Array, rowSize: number, count: number): number[][] {
  return Array.from({ length: count }, (_, i) => Array.from(data.subarray(i * rowSize, (i + 1) * rowSize)));
}
