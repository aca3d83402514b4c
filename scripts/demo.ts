import { readFileSync } from 'node:fs';
import path from 'node:path';
import { adminKeyPath } from '../src/auth/admin-key';
import { DataLayout } from '../src/storage/layout';
import { writeMnistIdx } from './mnist-idx';

/**
 * `npm run demo`: the seed scenario over REST against a running service.
 *   1. writes the 10,000 real MNIST digits of the `mnist` package to the volume as IDX
 *      (8,000 train / 2,000 test),
 *   2. pretrains a convolutional autoencoder on the training digits without their labels,
 *   3. restores its encoder convs into a new classifier, freezes them, trains a new head,
 *   4. prints the test accuracy on the 2,000 held-out digits.
 * GRAFT_URL (default http://127.0.0.1:3000) and DATA_DIR (default ./data, the service's volume);
 * the API key is GRAFT_KEY, else the admin key `npm start` keeps in DATA_DIR/.secrets/admin.key.
 */
const GRAFT_URL = (process.env.GRAFT_URL ?? 'http://127.0.0.1:3000').replace(/\/$/, '');
const DATA_DIR = process.env.DATA_DIR ?? './data';
const DATASET = 'mnist';
const GRAFT_KEY = process.env.GRAFT_KEY ?? readKey(adminKeyPath(DATA_DIR));

function readKey(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
const POLL_MS = 500;
const TARGET_ACCURACY = 0.95;

/** The recipe: measured to clear 0.95 on these digits (README "Demo"). */
export const PRETRAIN_EPOCHS = 5;
export const HEAD_EPOCHS = 10;

interface Job {
  id: string;
  status: string;
  progress: { phase?: string; epoch: number; epochs: number; batch: number; batches: number; loss: number | null; accuracy: number | null; valLoss: number | null; valAccuracy: number | null } | null;
  result: { checkpoint: string; backend: string; trainingSeconds?: number; metrics: { validation?: { loss: number; accuracy: number | null } | null; test?: { loss: number; accuracy: number | null; samples?: number } | null } } | null;
  error: { code: string; message: string; param: string | null } | null;
}

async function api<T>(method: string, route: string, body?: unknown): Promise<T> {
  const res = await fetch(`${GRAFT_URL}${route}`, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(GRAFT_KEY ? { authorization: `Bearer ${GRAFT_KEY}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = (await res.json()) as T & { error?: { code: string; message: string; param: string | null } };
  if (!res.ok) throw new Error(`${method} ${route} → ${res.status} ${json.error?.code}: ${json.error?.message} (${json.error?.param ?? 'no param'})`);
  return json;
}

const fmt = (v: number | null | undefined, digits = 4) => (v === null || v === undefined ? '-' : v.toFixed(digits));

async function follow(id: string, label: string): Promise<Job> {
  let lastLine = '';
  for (;;) {
    const job = await api<Job>('GET', `/v1/jobs/${id}`);
    const p = job.progress;
    const line = p
      ? `${label} ${job.status.padEnd(9)} ${(p.phase ?? '').padEnd(10)} epoch ${p.epoch}/${p.epochs} batch ${p.batch}/${p.batches} loss ${fmt(p.loss)} acc ${fmt(p.accuracy)} val_loss ${fmt(p.valLoss)} val_acc ${fmt(p.valAccuracy)}`
      : `${label} ${job.status}`;
    if (line !== lastLine) {
      console.log(line);
      lastLine = line;
    }
    if (['succeeded', 'failed', 'cancelled'].includes(job.status)) return job;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function ensureDataset(): Promise<void> {
  const layout = new DataLayout(DATA_DIR);
  await layout.ensure();
  const dir = layout.datasetDir(DATASET);
  try {
    await layout.writeDirAtomically(dir, async (staging) => {
      const counts = await writeMnistIdx(staging);
      console.log(`wrote ${counts.train} training and ${counts.test} test digits to ${path.resolve(dir)}`);
    }, 'dataset');
  } catch (err) {
    if ((err as { code?: string }).code !== 'dataset_exists') throw err;
    console.log(`dataset "${DATASET}" already on the volume`);
  }
  const described = await api<{ splits: { train: { count: number }; test?: { count: number } } }>('GET', `/v1/datasets/${DATASET}`);
  console.log(`the service sees it: ${described.splits.train.count} train / ${described.splits.test?.count ?? 0} test`);
}

async function main(): Promise<void> {
  await api('GET', '/healthz').catch((err: Error) => {
    throw new Error(`no graft service at ${GRAFT_URL} (${err.message}); start one with \`npm start\` or set GRAFT_URL`);
  });
  await ensureDataset();
  const run = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);

  const pretrain = await api<Job>('POST', '/v1/jobs', {
    type: 'pretrain',
    model: { architecture: 'conv-autoencoder', options: { filters: [16, 32], kernelSize: 5, bottleneck: 10 } },
    dataset: { name: DATASET, validationSplit: 0.1 },
    training: { epochs: PRETRAIN_EPOCHS, batchSize: 64, optimizer: 'adam', learningRate: 0.001, seed: 1 },
    output: { checkpoint: `mnist-cae-${run}` },
  });
  console.log(`pretrain job ${pretrain.id}: conv autoencoder, labels ignored`);
  const pre = await follow(pretrain.id, 'pretrain');
  if (pre.status !== 'succeeded') throw new Error(`pretrain ${pre.status}: ${pre.error?.code} ${pre.error?.message}`);
  console.log(`pretrain done on ${pre.result!.backend}: reconstruction loss ${fmt(pre.result!.metrics.validation?.loss)} (binary cross-entropy)`);

  const transfer = await api<Job>('POST', '/v1/jobs', {
    type: 'transfer',
    source: { checkpoint: `mnist-cae-${run}`, restore: '^enc_conv' },
    freeze: '^enc_conv',
    model: {
      cut: 'enc_flatten',
      head: [
        // CAE features vary widely in scale: normalising them is what lets a small head pass 0.95.
        { type: 'batchNormalization', name: 'fc_norm' },
        { type: 'dense', units: 128, activation: 'relu', name: 'fc_hidden' },
        { type: 'dropout', rate: 0.3, name: 'fc_dropout' },
        { type: 'dense', units: 10, activation: 'softmax', name: 'fc' },
      ],
    },
    dataset: { name: DATASET, validationSplit: 0.1 },
    training: { epochs: HEAD_EPOCHS, batchSize: 64, optimizer: 'adam', learningRate: 0.001, seed: 7 },
    output: { checkpoint: `mnist-digits-${run}`, select: 'best' },
  });
  console.log(`transfer job ${transfer.id}: encoder convs restored and frozen, new 10-way head`);
  const done = await follow(transfer.id, 'transfer');
  if (done.status !== 'succeeded') throw new Error(`transfer ${done.status}: ${done.error?.code} ${done.error?.message}`);
  const test = done.result!.metrics.test!;
  console.log(`\ncheckpoint ${done.result!.checkpoint} (backend ${done.result!.backend}, training ${done.result!.trainingSeconds ?? '?'} s)`);
  console.log(`test accuracy on ${test.samples ?? 2000} held-out digits: ${fmt(test.accuracy)} (loss ${fmt(test.loss)})`);
  if ((test.accuracy ?? 0) < TARGET_ACCURACY) {
    console.error(`below the ${TARGET_ACCURACY} target`);
    process.exitCode = 1;
  }
}

main().catch((err: Error) => {
  console.error(`demo failed: ${err.message}`);
  process.exitCode = 1;
});
