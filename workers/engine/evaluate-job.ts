import type { JobResult } from '../../src/jobs/types';
import { DEFAULT_MISTAKES, type UseJobSpec } from '../../src/spec/schema';
import { evaluate } from './evaluate';
import { lossFor } from './losses';
import type { RunContext } from './run-job';
import { predictRows, type UseInputs } from './use-inputs';

const BATCH = 512;

interface Mistake {
  index: number;
  label: string;
  predicted: string;
  probability: number;
}

/**
 * `type: "evaluate"`: the checkpoint's metrics on a split, computed by the training jobs' own
 * evaluate() (so `result.metrics.test` means the same thing), plus the most confident mistakes.
 */
export async function runEvaluateJob(spec: UseJobSpec, ctx: RunContext, inputs: UseInputs): Promise<{ result: JobResult }> {
  const { model, labels, truth, x } = inputs;
  const task = labels ? 'classification' : 'reconstruction';
  const { fn: lossFn } = lossFor(model, task);
  const split = { x, labels: truth };
  const metrics = await evaluate(model, split, {
    lossFn,
    batchSize: BATCH,
    classes: labels?.length ?? 0,
    withConfusion: true,
    classNames: labels ?? undefined,
    maxConfusionClasses: ctx.maxConfusionClasses,
  });
  const rounded = { ...metrics, loss: round(metrics.loss), accuracy: metrics.accuracy === null ? null : round(metrics.accuracy) };
  const mistakes = labels && truth ? await mostConfidentMistakes(inputs, labels, truth, spec.mistakes ?? DEFAULT_MISTAKES) : undefined;
  await ctx.beforeSave?.('output'); // fencing: only the attempt that owns the job records its result
  return {
    result: {
      checkpoint: spec.source.checkpoint,
      backend: ctx.backend,
      metrics: { [spec.dataset.split === 'train' ? 'train' : 'test']: rounded },
      ...(mistakes ? { mistakes } : {}),
    },
  };
}

/** The `keep` wrong predictions with the highest probability, most confident first. */
async function mostConfidentMistakes(inputs: UseInputs, labels: string[], truth: Int32Array, keep: number): Promise<Mistake[]> {
  const n = inputs.x.shape[0];
  const found: Mistake[] = [];
  for (let start = 0; start < n && keep > 0; start += BATCH) {
    const size = Math.min(BATCH, n - start);
    const { data, units } = await predictRows(inputs.model, inputs.x, start, size);
    for (let i = 0; i < size; i++) {
      let best = 0;
      for (let c = 1; c < units; c++) if (data[i * units + c] > data[i * units + best]) best = c;
      if (best === truth[start + i]) continue;
      found.push({ index: start + i, label: labels[truth[start + i]], predicted: labels[best] ?? String(best), probability: data[i * units + best] });
    }
    // Bounded memory: keep only the most confident so far.
    if (found.length > 4 * keep) found.sort(byConfidence).splice(keep);
  }
  return found.sort(byConfidence).slice(0, keep).map((m) => ({ ...m, probability: round(m.probability) }));
}

const byConfidence = (a: Mistake, b: Mistake) => b.probability - a.probability || a.index - b.index;

function round(v: number, digits = 6): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
