import { promises as fs } from 'node:fs';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { UnprocessableError } from '../../src/errors';
import type { JobResult } from '../../src/jobs/types';
import type { UseJobSpec } from '../../src/spec/schema';
import { MANIFEST_FILE, parseManifest } from '../../src/storage/checkpoints';
import { DatasetCatalog } from '../../src/storage/datasets';
import { loadDataset } from './data';
import { loadModel } from './checkpoint-io';
import type { RunContext } from './run-job';
import { runEvaluateJob } from './evaluate-job';
import { runPredictJob } from './predict-job';
import type { UseInputs } from './use-inputs';

const SOURCE = '/source/checkpoint';

/** Runs an evaluate or predict job (run-job.ts runs the training ones). Frees every tensor it made. */
export async function runUseJob(spec: UseJobSpec, ctx: RunContext): Promise<{ result: JobResult }> {
  const progress = (phase: string) => ctx.onProgress?.({ phase, epoch: 0, epochs: 0, batch: 0, batches: 0, loss: null, accuracy: null, valLoss: null, valAccuracy: null });
  await progress('loading');
  const inputs = await loadInputs(spec, ctx);
  try {
    await progress(spec.type === 'evaluate' ? 'evaluating' : 'predicting');
    return spec.type === 'evaluate' ? await runEvaluateJob(spec, ctx, inputs) : await runPredictJob(spec, ctx, inputs);
  } finally {
    inputs.model.dispose();
  }
}

async function loadInputs(spec: UseJobSpec, ctx: RunContext): Promise<UseInputs> {
  const dir = ctx.layout.checkpointDir(spec.source.checkpoint, SOURCE);
  const model = await loadModel(dir);
  try {
    const manifest = await fs.readFile(path.join(dir, MANIFEST_FILE)).then((b) => parseManifest(dir, b, SOURCE), () => null);
    const inputShape = model.inputs[0].shape.slice(1) as number[];
    // Default: the test split, or the only split of a folder of class folders (an uploaded image set).
    const split = spec.dataset.split ?? ((await new DatasetCatalog(ctx.layout, ctx.datasetLimits).describe(spec.dataset.name)).splits.test ? 'test' : 'train');
    const data = await loadDataset(ctx.layout, spec.dataset.name, { inputShape, split, limits: ctx.datasetLimits });
    const classifier = manifest?.task === 'classification' || (manifest === null && finalUnits(model) === data.classes.length);
    const labels = classifier ? (manifest?.labels ?? data.classes) : null;
    let truth: Int32Array | null = null;
    if (labels) {
      const unknown = data.classes.filter((c) => !labels.includes(c));
      if (unknown.length > 0 && spec.type === 'predict') {
        // Folders named otherwise than the checkpoint's classes: predictions without a true label.
        return { model, manifest, labels, x: { data: data.images, shape: [...data.shape] }, truth: null };
      }
      if (unknown.length > 0) {
        throw new UnprocessableError('classes_mismatch', `Dataset "${spec.dataset.name}" has classes the checkpoint does not know: ${unknown.slice(0, 8).join(', ')}; the checkpoint's classes are ${labels.slice(0, 20).join(', ')}.`, '/dataset/name');
      }
      const toCheckpoint = data.classes.map((c) => labels.indexOf(c));
      truth = Int32Array.from(data.labels, (l) => toCheckpoint[l]);
    }
    return { model, manifest, labels, x: { data: data.images, shape: [...data.shape] }, truth };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

function finalUnits(model: tf.LayersModel): number | null {
  const shape = model.outputs[0].shape;
  return shape.length === 2 ? shape[1] : null;
}

