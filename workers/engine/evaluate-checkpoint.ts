import { UnprocessableError } from '../../src/errors';
import { defaultPreprocess, resolvePreprocess, type Preprocess, type PreprocessSpec } from '../../src/spec/preprocess';
import { openSamples, type DatasetLimits, type SplitName } from '../../src/storage/datasets';
import type { DataLayout } from '../../src/storage/layout';
import { loadModel, readCheckpoint } from './checkpoint-io';
import { scaledRows } from './data/preprocess';
import { evaluate, type Metrics } from './evaluate';
import { inferenceBatch } from './host-data';
import { lossFor } from './losses';
import { dispose } from './model';

/**
 * A saved checkpoint evaluated on a dataset split, fed exactly as it was trained: its manifest's
 * `preprocess` record (or the default for a checkpoint without one), unless `override` says
 * otherwise. What an evaluation job runs; prediction applies the same record per image
 * (data/preprocess.ts preprocessImage).
 */
export interface EvaluateCheckpointOptions {
  split: SplitName;
  /** Fields that replace the checkpoint's record (an experiment, or a checkpoint that declared none). */
  override?: PreprocessSpec;
  limits?: DatasetLimits;
  shardBytes: number;
}

export async function evaluateCheckpoint(layout: DataLayout, checkpoint: string, dataset: string, opts: EvaluateCheckpointOptions): Promise<{ metrics: Metrics; preprocess: Preprocess }> {
  const dir = layout.checkpointDir(checkpoint, '/checkpoint');
  const { manifest } = await readCheckpoint(dir);
  const model = await loadModel(dir);
  try {
    const inputShape = model.inputs[0].shape.slice(1) as [number, number, number];
    const recorded = manifest?.preprocess ?? defaultPreprocess(inputShape[2]);
    const preprocess = resolvePreprocess(opts.override, recorded, inputShape[2]);
    if (preprocess.channels !== inputShape[2]) {
      throw new UnprocessableError('dataset_shape_mismatch', `preprocess.channels is ${preprocess.channels} but the checkpoint's input has ${inputShape[2]} channels.`, '/preprocess/channels');
    }
    const task = manifest?.task ?? 'classification';
    const { store } = await openSamples(layout, dataset, { split: opts.split, inputShape, resize: preprocess.resize, limits: opts.limits, shardBytes: opts.shardBytes });
    try {
      const classification = task === 'classification';
      const split = { x: scaledRows(store, null, preprocess), labels: classification ? store.labels : null };
      const classes = classification ? (manifest?.labels?.length ?? store.classes.length) : 0;
      const metrics = await evaluate(model, split, { lossFn: lossFor(model, task).fn, batchSize: inferenceBatch(split.x), classes, withConfusion: false });
      return { metrics, preprocess };
    } finally {
      await store.close();
    }
  } finally {
    dispose(model);
  }
}
