import type * as tf from '@tensorflow/tfjs';
import type { RandomState } from './data/random';

/**
 * What the training loop (trainer.ts) and its checkpoints (epoch-checkpoints.ts) exchange: the
 * metrics of an epoch and the exact position reached. Kept apart from both so neither imports
 * the other.
 */
export interface EpochMetrics {
  epoch: number;
  loss: number;
  accuracy: number | null;
  valLoss: number | null;
  valAccuracy: number | null;
  seconds: number;
}

export interface TrainingPosition {
  /** The epoch in progress (1-based); `batch` batches of it are done (0 = at its start). */
  epoch: number;
  batch: number;
  /** Shuffling generator at the start of `epoch` (the permutation is replayed on resume). */
  rngState: RandomState;
  lossSum: number;
  correct: number;
  samplesSeen: number;
  trainSeconds: number;
  history: EpochMetrics[];
  best: number | null;
  bestEpoch: number | null;
  sinceBest: number;
}

type NamedTensor = { name: string; tensor: tf.Tensor };

export interface ResumeState {
  position: TrainingPosition;
  optimizerWeights: NamedTensor[][];
  bestWeights: tf.Tensor[] | null;
  /** Frees the tensors above once they have been applied. */
  dispose(): void;
}
