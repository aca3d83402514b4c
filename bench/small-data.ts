import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataLayout } from '../src/storage/layout';
import type { JobSpec } from '../src/spec/schema';
import { writeMnistIdx } from '../scripts/mnist-idx';
import { initBackend, type BackendPreference } from '../workers/engine/backend';
import { runJob } from '../workers/engine/run-job';

/**
 * `npm run bench:small-data`: why transfer learning exists. With only LABELLED training digits
 * (default 100, a seeded stratified subset of the 8,000), compare on the 2,000 test digits:
 *   (a) scratch     the seed network trained from random initialisation,
 *   (b) frozen      the encoder of an autoencoder pretrained on all 8,000 digits WITHOUT labels,
 *                   frozen, with a new head,
 *   (c) fine-tuned  the same encoder trained at 0.1x the head's learning rate (lrMultipliers),
 *   and (b), (c) with a BatchNorm layer normalising the encoder features in front of the head.
 * Mean and spread over 3 seeds. Every run goes through the real job runner.
 */
const LABELLED = Number(process.env.LABELLED ?? 100);
const SEEDS = [1, 2, 3];
const PRETRAIN_EPOCHS = 5;
const EPOCHS = 60;
const BATCH = 20;
const LEARNING_RATE = 0.001;

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'graft-small-data-'));
  try {
    const layout = new DataLayout(dir);
    await layout.ensure();
    await layout.writeDirAtomically(layout.datasetDir('mnist'), (s) => writeMnistIdx(s).then(() => undefined), 'dataset');
    const backend = await initBackend((process.env.GRAFT_BACKEND as BackendPreference | undefined) ?? 'auto');
    const ctx = (jobId: string) => ({ jobId, layout, backend, featureCacheMaxBytes: 1 << 30 });

    console.log(`pretraining the conv autoencoder on 8,000 digits, labels ignored (${PRETRAIN_EPOCHS} epochs, ${backend})...`);
    await runJob(
      {
        type: 'pretrain',
        model: { architecture: 'conv-autoencoder', options: { filters: [16, 32], kernelSize: 5, bottleneck: 10 } },
        dataset: { name: 'mnist', validationSplit: 0.1 },
        training: { epochs: PRETRAIN_EPOCHS, batchSize: 64, seed: 1 },
        output: { checkpoint: 'cae' },
      },
      ctx('pretrain'),
    );

    const dataset = { name: 'mnist', validationSplit: 0, limit: LABELLED };
    const training = (seed: number) => ({ epochs: EPOCHS, batchSize: BATCH, optimizer: 'adam' as const, learningRate: LEARNING_RATE, seed });
    const head = [{ type: 'dense' as const, units: 10, activation: 'softmax' as const, name: 'fc' }];
    // Autoencoder features vary widely in scale; a BatchNorm in front of the classifier fixes that.
    const normHead = [{ type: 'batchNormalization' as const, name: 'fc_norm' }, ...head];
    const recipes: Record<string, (seed: number, out: string) => JobSpec> = {
      scratch: (seed, out) => ({ type: 'pretrain', model: { architecture: 'conv-classifier', options: { filters: [16, 32], kernelSize: 5 } }, dataset, training: training(seed), output: { checkpoint: out } }),
      frozen: (seed, out) => ({ type: 'transfer', source: { checkpoint: 'cae', restore: '^enc_conv' }, freeze: '^enc_conv', model: { cut: 'enc_flatten', head }, dataset, training: training(seed), output: { checkpoint: out } }),
      'fine-tuned': (seed, out) => ({
        type: 'transfer',
        source: { checkpoint: 'cae', restore: '^enc_conv' },
        model: { cut: 'enc_flatten', head },
        dataset,
        training: { ...training(seed), lrMultipliers: { '^enc_conv': 0.1 } },
        output: { checkpoint: out },
      }),
      'frozen+norm': (seed, out) => ({ type: 'transfer', source: { checkpoint: 'cae', restore: '^enc_conv' }, freeze: '^enc_conv', model: { cut: 'enc_flatten', head: normHead }, dataset, training: training(seed), output: { checkpoint: out } }),
      'fine-tuned+norm': (seed, out) => ({
        type: 'transfer',
        source: { checkpoint: 'cae', restore: '^enc_conv' },
        model: { cut: 'enc_flatten', head: normHead },
        dataset,
        training: { ...training(seed), lrMultipliers: { '^enc_conv': 0.1 } },
        output: { checkpoint: out },
      }),
    };
    const only = process.env.RECIPES?.split(',');

    const rows: string[] = [];
    for (const [name, recipe] of Object.entries(recipes)) {
      if (only && !only.includes(name)) continue;
      const accuracies: number[] = [];
      for (const seed of SEEDS) {
        const out = `${name.replace(/[^A-Za-z0-9-]/g, "-")}-${seed}`;
        const { result } = await runJob(recipe(seed, out), ctx(out));
        accuracies.push(result.metrics.test!.accuracy!);
      }
      const mean = accuracies.reduce((a, b) => a + b, 0) / accuracies.length;
      rows.push(`| ${name.padEnd(15)} | ${mean.toFixed(4)} | ${accuracies.map((a) => a.toFixed(4)).join(', ')} |`);
      console.log(rows[rows.length - 1]);
    }
    console.log(`\n${LABELLED} labelled training digits, ${EPOCHS} epochs, batch ${BATCH}, Adam ${LEARNING_RATE}; test = 2,000 held-out digits; backend ${backend}`);
    console.log('| recipe          | mean test accuracy | seeds 1, 2, 3 |\n|---|---|---|');
    rows.forEach((r) => console.log(r));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

void main();
