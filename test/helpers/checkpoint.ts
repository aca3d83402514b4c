import * as tf from '@tensorflow/tfjs';
import { DataLayout } from '../../src/storage/layout';
import { saveCheckpoint } from '../../workers/engine/checkpoint-io';

/**
 * A small conv-autoencoder-shaped source checkpoint (enc_conv1, enc_pool1, enc_flatten, fc)
 * written with the real checkpoint writer, for tests that need one to exist.
 */
export async function writeTinyCheckpoint(dataDir: string, name: string, tenant?: string): Promise<void> {
  await tf.setBackend('cpu');
  const model = tf.sequential({ name });
  model.add(tf.layers.conv2d({ name: 'enc_conv1', inputShape: [28, 28, 1], filters: 4, kernelSize: 5, activation: 'relu' }));
  model.add(tf.layers.maxPooling2d({ name: 'enc_pool1', poolSize: 2 }));
  model.add(tf.layers.flatten({ name: 'enc_flatten' }));
  model.add(tf.layers.dense({ name: 'fc', units: 10, activation: 'softmax' }));
  try {
    await saveCheckpoint(new DataLayout(dataDir, tenant), name, model, { jobId: 'fixture', jobType: 'pretrain', task: 'classification', inputShape: [28, 28, 1] });
  } finally {
    model.dispose();
  }
}
