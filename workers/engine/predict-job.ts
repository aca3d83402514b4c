import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import type { JobResult } from '../../src/jobs/types';
import { DEFAULT_PREDICT_TOP, type UseJobSpec } from '../../src/spec/schema';
import { jobOutputFile } from '../../src/storage/job-output';
import type { RunContext } from './run-job';
import { predictRows, type UseInputs } from './use-inputs';

const BATCH = 256;

/**
 * `type: "predict"`: one JSON line per sample of the split, in order —
 * `{"index", "label"?, "predicted", "probability", "top": [{label, probability}]}` for a
 * classifier, `{"index", "output": [...]}` otherwise — written to a temporary file and renamed to
 * DATA_DIR/jobs/<id>/output.jsonl once complete, so a reader never sees half a file.
 */
export async function runPredictJob(spec: UseJobSpec, ctx: RunContext, inputs: UseInputs): Promise<{ result: JobResult }> {
  const { model, labels, truth, x } = inputs;
  const file = jobOutputFile(ctx.layout, ctx.jobId);
  await fs.mkdir(path.dirname(file), { recursive: true });
  const staging = `${file}.${process.pid}.tmp`;
  const out = createWriteStream(staging);
  const top = spec.top ?? DEFAULT_PREDICT_TOP;
  const n = x.shape[0];
  let correct = 0;
  let bytes = 0;
  try {
    for (let start = 0; start < n; start += BATCH) {
      if (ctx.signal?.aborted) throw ctx.signal.reason ?? new Error('cancelled');
      const size = Math.min(BATCH, n - start);
      const { data, units } = await predictRows(model, x, start, size);
      let chunk = '';
      for (let i = 0; i < size; i++) {
        const row = data.subarray(i * units, (i + 1) * units);
        const index = start + i;
        if (labels) {
          const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a]);
          const predicted = labels[order[0]] ?? String(order[0]);
          const label = truth ? labels[truth[index]] : undefined;
          if (label === predicted) correct++;
          chunk += `${JSON.stringify({ index, ...(label !== undefined ? { label } : {}), predicted, probability: row[order[0]], top: order.slice(0, top).map((c) => ({ label: labels[c] ?? String(c), probability: row[c] })) })}\n`;
        } else {
          chunk += `${JSON.stringify({ index, output: Array.from(row) })}\n`;
        }
      }
      bytes += Buffer.byteLength(chunk);
      if (!out.write(chunk)) await once(out, 'drain');
      await ctx.onProgress?.({ phase: 'predicting', epoch: 0, epochs: 0, batch: Math.ceil((start + size) / BATCH), batches: Math.ceil(n / BATCH), loss: null, accuracy: null, valLoss: null, valAccuracy: null });
    }
    out.end();
    await once(out, 'finish');
    await ctx.beforeSave?.('output');
    await fs.rename(staging, file);
  } catch (err) {
    out.destroy();
    await fs.rm(staging, { force: true });
    throw err;
  }
  return {
    result: {
      checkpoint: spec.source.checkpoint,
      backend: ctx.backend,
      metrics: {},
      output: { lines: n, bytes, accuracy: labels && truth ? round(correct / n) : null },
    },
  };
}

function round(v: number, digits = 6): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
