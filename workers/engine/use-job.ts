import { promises as fs } from 'node:fs';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { UnprocessableError } from '../../src/errors';
import type { JobResult } from '../../src/jobs/types';
import type { UseJobSpec } from '../../src/spec/schema';
import { MANIFEST_FILE, parseManifest } from '../../src/storage/checkpoints';
import { defaultPreprocess } from '../../src/spec/preprocess';
import { DatasetCatalog, openSamples, type SampleStore } from '../../src/storage/datasets';
import { loadModel } from './checkpoint-io';
import { scaledRows } from './data/preprocess';
import { DEFAULT_SHARD_BYTES, type RunContext } from './run-job';
import { runEvaluateJob } from './evaluate-job';
import { runPredictJob } from './predict-job';
import type { UseInputs } from './use-inputs';

const SOURCE = '/source/checkpoint';

/** Runs an evaluate or predict job (run-job.ts runs the training ones). Frees every tensor it made. */
export async function runUseJob(spec: UseJobSpec, ctx: RunContext): Promise<{ result: JobResult }> {
  const progress = (phase: string) => ctx.onProgress?.({ phase, epoch: 0, epochs: 0, batch: 0, batches: 0, loss: null, accuracy: null, valLoss: null, valAccuracy: null });
  await progress('loading');
  const { inputs, store } = await loadInputs(spec, ctx);
  try {
    await progress(spec.type === 'evaluate' ? 'evaluating' : 'predicting');
    return spec.type === 'evaluate' ? await runEvaluateJob(spec, ctx, inputs) : await runPredictJob(spec, ctx, inputs);
  } finally {
    inputs.model.dispose();
    await store.close();
  }
}

/**
 * The checkpoint and the split, fed exactly as the checkpoint was trained: resized and scaled as
 * its manifest's `preprocess` record says (the default for checkpoints from before the record),
 * read from the dataset's sample cache a batch at a time.
 */
async function loadInputs(spec: UseJobSpec, ctx: RunContext): Promise<{ inputs: UseInputs; store: SampleStore }> {
  // `name` or `public/name`, relative to the job's tenant.
  const source = ctx.layout.checkpointRef(spec.source.checkpoint);
  const dataset = ctx.layout.datasetRef(spec.dataset.name);
  const dir = source.layout.checkpointDir(source.name, SOURCE);
  const model = await loadModel(dir);
  try {
    const manifest = await fs.readFile(path.join(dir, MANIFEST_FILE)).then((b) => parseManifest(dir, b, SOURCE), () => null);
    const inputShape = model.inputs[0].shape.slice(1) as number[];
    // Default: the test split, or the only split of a folder of class folders (an uploaded image set).
    const split = spec.dataset.split ?? ((await new DatasetCatalog(dataset.layout, ctx.datasetLimits).describe(dataset.name)).splits.test ? 'test' : 'train');
    const preprocess = manifest?.preprocess ?? defaultPreprocess(inputShape[2]);
    const { store } = await openSamples(dataset.layout, dataset.name, { split, inputShape: inputShape as [number, number, number], resize: preprocess.resize, limits: ctx.datasetLimits, shardBytes: ctx.sampleCacheShardBytes ?? DEFAULT_SHARD_BYTES });
    try {
      const x = scaledRows(store, null, preprocess);
      const classifier = manifest?.task === 'classification' || (manifest === null && finalUnits(model) === store.classes.length);
      const labels = classifier ? (manifest?.labels ?? store.classes) : null;
      let truth: Int32Array | null = null;
      if (labels) {
        const unknown = store.classes.filter((c) => !labels.includes(c));
        if (unknown.length > 0 && spec.type === 'predict') {
          // Folders named otherwise than the checkpoint's classes: predictions without a true label.
          return { inputs: { model, manifest, labels, x, truth: null }, store };
        }
        if (unknown.length > 0) {
          throw new UnprocessableError('classes_mismatch', `Dataset "${spec.dataset.name}" has classes the checkpoint does not know: ${unknown.slice(0, 8).join(', ')}; the checkpoint's classes are ${labels.slice(0, 20).join(', ')}.`, '/dataset/name');
        }
        const toCheckpoint = store.classes.map((c) => labels.indexOf(c));
        truth = Int32Array.from(store.labels, (l) => toCheckpoint[l]);
      }
      return { inputs: { model, manifest, labels, x, truth }, store };
    } catch (err) {
      await store.close();
      throw err;
    }
  } catch (err) {
    model.dispose();
    throw err;
  }
}

function finalUnits(model: tf.LayersModel): number | null {
  const shape = model.outputs[0].shape;
  return shape.length === 2 ? shape[1] : null;
}

