import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { DataLayout } from '../../src/storage/layout';
import { TRAINING_STATE_FILE, trainingCheckpointFolders, trainingCheckpointName, trainingCheckpointsDir } from '../../src/storage/training-checkpoints';
import { FileSystemIOHandler, readCheckpoint } from './checkpoint-io';
import type { ResumeState, TrainingPosition } from './training-state';

export type { ResumeState, TrainingPosition } from './training-state';

const STATE_FILE = TRAINING_STATE_FILE;

interface StateFile {
  jobId: string;
  position: TrainingPosition;
  optimizers: { file: string; specs: tf.io.WeightsManifestEntry[] }[];
  best: { file: string; specs: tf.io.WeightsManifestEntry[] } | null;
  createdAt: string;
}

/**
 * Per-epoch (and on-shutdown) training checkpoints of one job, under DATA_DIR/jobs/<id>/:
 * the network's weights, every optimizer's state, the best weights so far (output.select
 * "best"), and the position — epoch, batches done in it, the shuffling generator's state at
 * its start, the history — everything a worker on another host needs to continue exactly.
 * Each is written atomically; the last `keep` are kept.
 */
export class EpochCheckpoints {
  readonly dir: string;

  constructor(
    private readonly layout: DataLayout,
    private readonly jobId: string,
    private readonly keep: number,
  ) {
    this.dir = trainingCheckpointsDir(layout, jobId);
  }

  async save(position: TrainingPosition, model: tf.LayersModel, optimizers: tf.Optimizer[], bestWeights: tf.Tensor[] | null): Promise<void> {
    const name = trainingCheckpointName(position.epoch, position.batch);
    const final = path.join(this.dir, name);
    await fs.mkdir(this.dir, { recursive: true });
    await fs.rm(final, { recursive: true, force: true }); // a retried save of the same position
    await this.layout.writeDirAtomically(final, async (staging) => {
      await model.save(new FileSystemIOHandler(staging));
      const state: StateFile = { jobId: this.jobId, position, optimizers: [], best: null, createdAt: new Date().toISOString() };
      for (const [i, opt] of optimizers.entries()) {
        const encoded = await tf.io.encodeWeights(await opt.getWeights());
        const file = `optimizer-${i}.bin`;
        await fs.writeFile(path.join(staging, file), Buffer.from(encoded.data));
        state.optimizers.push({ file, specs: encoded.specs });
      }
      if (bestWeights) {
        const encoded = await tf.io.encodeWeights(bestWeights.map((tensor, i) => ({ name: `best_${i}`, tensor })));
        await fs.writeFile(path.join(staging, 'best.bin'), Buffer.from(encoded.data));
        state.best = { file: 'best.bin', specs: encoded.specs };
      }
      await fs.writeFile(path.join(staging, STATE_FILE), JSON.stringify(state));
    }, 'training checkpoint');
    await this.prune();
  }

  private folders(): Promise<string[]> {
    return trainingCheckpointFolders(this.dir);
  }

  private async prune(): Promise<void> {
    const all = await this.folders();
    for (const old of all.slice(0, Math.max(0, all.length - this.keep))) await fs.rm(path.join(this.dir, old), { recursive: true, force: true });
  }

  private async readState(name: string): Promise<StateFile | null> {
    try {
      return JSON.parse(await fs.readFile(path.join(this.dir, name, STATE_FILE), 'utf8')) as StateFile;
    } catch {
      return null;
    }
  }

  /**
   * Loads the newest readable checkpoint into `model` and returns what the trainer needs to
   * continue; null when there is none. An unreadable newest one falls back to the one before.
   */
  async resumeInto(model: tf.LayersModel): Promise<ResumeState | null> {
    for (const name of (await this.folders()).reverse()) {
      const folder = path.join(this.dir, name);
      const state = await this.readState(name);
      if (!state || state.jobId !== this.jobId) continue;
      try {
        const saved = await readCheckpoint(folder);
        const vars = new Map<string, tf.LayerVariable>();
        for (const layer of model.layers) for (const w of layer.weights) vars.set(w.originalName, w);
        for (const [weightName, w] of saved.weights) {
          const v = vars.get(weightName);
          if (v) tf.tidy(() => {
            v.write(tf.tensor(w.values, w.shape, 'float32'));
          });
        }
        const decode = async (file: string, specs: tf.io.WeightsManifestEntry[]) => {
          const bytes = await fs.readFile(path.join(folder, file));
          const map = tf.io.decodeWeights(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), specs);
          return specs.map((s) => ({ name: s.name, tensor: map[s.name] }));
        };
        const optimizerWeights = await Promise.all(state.optimizers.map((o) => decode(o.file, o.specs)));
        const bestWeights = state.best ? (await decode(state.best.file, state.best.specs)).map((t) => t.tensor) : null;
        return {
          position: state.position,
          optimizerWeights,
          bestWeights,
          dispose: () => tf.dispose([...optimizerWeights.flat().map((t) => t.tensor), ...(bestWeights ?? [])]),
        };
      } catch {
        continue; // a damaged checkpoint: try the previous one
      }
    }
    return null;
  }
}
