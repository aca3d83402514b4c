import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import request from 'supertest';
import { buildTestApp, type TestApp } from '../helpers/app';
import { makeTestEnv, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';
import { waitForJobEnd } from '../helpers/jobs';
import { startProcess, type RunningProcess } from '../helpers/processes';
import { loadModel } from '../../workers/engine/checkpoint-io';

/**
 * The whole path on real parts: REST → BullMQ in Redis → a worker process → sandboxed child →
 * TensorFlow.js → checkpoint on the volume. Small real MNIST data so it runs in seconds.
 */
describe('submit → worker → checkpoint', () => {
  let env: TestEnv;
  let t: TestApp;
  let worker: RunningProcess;

  beforeAll(async () => {
    env = await makeTestEnv();
    await writeMnistDataset(env.dataDir, 'digits', { train: 1000, test: 300 });
    t = await buildTestApp(env);
    worker = startProcess('worker', env.env);
  });

  afterAll(async () => {
    const code = await worker.stop();
    await t.close();
    await env.cleanup();
    expect(code).toBe(0);
  });

  const waitForJob = (id: string) => waitForJobEnd(t.app.server, id, 120_000, () => `(worker log: ${worker.output().slice(-2000)})`);

  it('pretrains a conv autoencoder, then transfers its encoder to a digit classifier', async () => {
    const pre = await request(t.app.server)
      .post('/v1/jobs')
      .send({
        type: 'pretrain',
        model: { architecture: 'conv-autoencoder', options: { filters: [8, 16], bottleneck: 32 } },
        dataset: { name: 'digits' },
        training: { epochs: 2, batchSize: 64, seed: 1 },
        output: { checkpoint: 'cae' },
      });
    expect(pre.status).toBe(202);
    expect(pre.body.status).toBe('queued');
    const preDone = await waitForJob(pre.body.id);
    expect(preDone.error).toBeNull();
    expect(preDone.status).toBe('succeeded');
    expect(preDone.startedAt).not.toBeNull();
    expect(preDone.result.checkpoint).toBe('cae');
    expect(preDone.result.metrics.validation.loss).toBeGreaterThan(0);

    const transfer = await request(t.app.server)
      .post('/v1/jobs')
      .send({
        type: 'transfer',
        source: { checkpoint: 'cae', restore: '^enc_conv' },
        freeze: '^enc_conv',
        model: { cut: 'enc_flatten', head: [{ type: 'dense', units: 10, activation: 'softmax', name: 'fc' }] },
        dataset: { name: 'digits', validationSplit: 0.1 },
        training: { epochs: 5, batchSize: 32, learningRate: 0.003, seed: 7 },
        output: { checkpoint: 'digits-clf' },
      });
    expect(transfer.status).toBe(202);
    const done = await waitForJob(transfer.body.id);
    expect(done.error).toBeNull();
    expect(done.status).toBe('succeeded');
    expect(done.progress.epoch).toBe(5);
    expect(done.result.restored).toEqual(['enc_conv1/kernel', 'enc_conv1/bias', 'enc_conv2/kernel', 'enc_conv2/bias']);
    expect(done.result.frozen).toEqual(['enc_conv1', 'enc_conv2']);
    expect(done.result.featureCache).toBe(true);
    // 900 real training digits, 5 epochs of a linear head on frozen features: far above chance (0.1).
    expect(done.result.metrics.test.accuracy).toBeGreaterThan(0.6);
    expect(done.result.metrics.test.samples).toBe(300);
    expect(done.result.metrics.test.confusionMatrix).toHaveLength(10);

    // The checkpoint is on the volume with a manifest whose hashes match, and loads and predicts.
    const dir = path.join(env.dataDir, 'tenants', 'default', 'checkpoints', 'digits-clf');
    const manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ name: 'digits-clf', jobId: transfer.body.id, jobType: 'transfer', task: 'classification', frozen: ['enc_conv1', 'enc_conv2'] });
    expect(manifest.source.checkpoint).toBe('cae');
    expect(manifest.history).toHaveLength(5);
    expect(Object.keys(manifest.files)).toEqual(expect.arrayContaining(['model.json']));
    await tf.setBackend('cpu');
    const model = await loadModel(dir);
    const probs = tf.tidy(() => model.predict(tf.zeros([2, 28, 28, 1])) as tf.Tensor);
    expect(probs.shape).toEqual([2, 10]);
    const sums = Array.from(await probs.sum(-1).data());
    sums.forEach((s) => expect(s).toBeCloseTo(1, 4));
    probs.dispose();
    model.dispose();

    // The API describes it, and lists both jobs newest first.
    const ckpt = await request(t.app.server).get('/v1/checkpoints/digits-clf');
    expect(ckpt.status).toBe(200);
    expect(ckpt.body.layers.map((l: { name: string }) => l.name)).toEqual(expect.arrayContaining(['enc_conv1', 'enc_conv2', 'fc']));
    const list = await request(t.app.server).get('/v1/jobs');
    expect(list.body.data.map((j: { id: string }) => j.id)).toEqual([transfer.body.id, pre.body.id]);
    const succeeded = await request(t.app.server).get('/v1/jobs?status=succeeded&limit=1');
    expect(succeeded.body.data).toHaveLength(1);
    expect(succeeded.body.nextCursor).not.toBeNull();
    const page2 = await request(t.app.server).get(`/v1/jobs?status=succeeded&limit=1&cursor=${succeeded.body.nextCursor}`);
    expect(page2.body.data[0].id).toBe(pre.body.id);
    expect(page2.body.nextCursor).toBeNull();
  }, 240_000);

  it('fails a job whose source checkpoint is corrupt with checkpoint_corrupt, never retries it, and the worker lives on', async () => {
    // A byte flipped in a weight shard after submission: only the worker's verified read can see it.
    const src = path.join(env.dataDir, 'tenants', 'default', 'checkpoints', 'cae');
    const copy = path.join(env.dataDir, 'tenants', 'default', 'checkpoints', 'cae-damaged');
    await fs.cp(src, copy, { recursive: true });
    const res = await request(t.app.server)
      .post('/v1/jobs')
      .send({
        type: 'transfer',
        source: { checkpoint: 'cae-damaged', restore: '^enc_conv' },
        model: { cut: 'enc_flatten', head: [{ type: 'dense', units: 10, activation: 'softmax' }] },
        dataset: { name: 'digits' },
        training: { epochs: 1 },
        output: { checkpoint: 'from-damaged' },
      });
    expect(res.status).toBe(202);
    const shard = (await fs.readdir(copy)).find((f) => f.endsWith('.bin'))!;
    const bytes = await fs.readFile(path.join(copy, shard));
    bytes[100] ^= 0xff;
    await fs.writeFile(path.join(copy, shard), bytes);

    const done = await waitForJob(res.body.id);
    expect(done.status).toBe('failed');
    expect(done.error).toMatchObject({ code: 'checkpoint_corrupt', param: '/source/checkpoint' });
    expect(done.error.message).toContain(shard);
    expect(done.attempts).toBe(1);
    await expect(fs.stat(path.join(env.dataDir, 'tenants', 'default', 'checkpoints', 'from-damaged'))).rejects.toThrow();
    expect(worker.child.exitCode).toBeNull();
  }, 120_000);
});
