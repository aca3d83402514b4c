import sharp from 'sharp';
import request from 'supertest';
import { buildTestApp, type TestApp } from '../helpers/app';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';
import { classifierSpec, waitForJobEnd } from '../helpers/jobs';
import { startProcess, type RunningProcess } from '../helpers/processes';
import { loadDataset } from '../../src/storage/datasets';
import { DataLayout } from '../../src/storage/layout';
import type { InferenceStats } from '../../src/inference/protocol';

/**
 * Predictions through POST /v1/checkpoints/{name}/predict on real parts: a checkpoint trained by a
 * real worker job, inference child processes running TensorFlow.js, Redis for eviction.
 */
describe('predict with a trained checkpoint', () => {
  let env: TestEnv;
  let t: TestApp;
  let worker: RunningProcess;
  let testAccuracy: number;
  let trainingTest: { loss: number; accuracy: number; confusionMatrix: number[][]; perClassAccuracy: Record<string, number>; samples: number };
  let evaluateJobId: string;
  let test: { images: Float32Array; labels: Int32Array; classes: string[]; n: number };
  const SIZE = 28 * 28;

  const instance = (i: number) => Array.from(test.images.subarray(i * SIZE, (i + 1) * SIZE));
  const nested = (i: number) => Array.from({ length: 28 }, (_, r) => Array.from({ length: 28 }, (_, c) => [test.images[i * SIZE + r * 28 + c]]));
  const png = (i: number) =>
    sharp(Buffer.from(Array.from(test.images.subarray(i * SIZE, (i + 1) * SIZE), (v) => Math.round(v * 255))), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
  const predict = (name: string, body: object) => request(t.app.server).post(`/v1/checkpoints/${name}/predict`).send(body);
  const stats = async (): Promise<InferenceStats> => (await t.services.deps.predictions.stats())[0];

  beforeAll(async () => {
    env = await makeTestEnv({ PREDICT_MAX_INSTANCES: '250', INFERENCE_BATCH_WINDOW_MS: '20' });
    await writeMnistDataset(env.dataDir, 'digits', { train: 600, test: 200 });
    t = await buildTestApp(env);
    worker = startProcess('worker', env.env);
    const job = await request(t.app.server).post('/v1/jobs').send(classifierSpec('clf', 2));
    expect(job.status).toBe(202);
    const done = await waitForJobEnd(t.app.server, job.body.id, 180_000, () => worker.output().slice(-2000));
    expect(done.status).toBe('succeeded');
    testAccuracy = done.result.metrics.test.accuracy;
    trainingTest = done.result.metrics.test;
    const loaded = await loadDataset(new DataLayout(env.dataDir), 'digits', { inputShape: [28, 28, 1], split: 'test' });
    test = { images: loaded.images, labels: loaded.labels, classes: loaded.classes, n: loaded.labels.length };
  }, 240_000);

  afterAll(async () => {
    const code = await worker.stop();
    await t.close();
    await env.cleanup();
    expect(code).toBe(0);
  });

  it('records how training preprocessed its inputs in the manifest', async () => {
    const res = await request(t.app.server).get('/v1/checkpoints/clf');
    expect(res.body.manifest.preprocess).toEqual({ resize: 'stretch', channels: 1, scaling: 'unit' });
  });

  it("agrees exactly with the job's reported test accuracy", async () => {
    const res = await predict('clf', { instances: Array.from({ length: test.n }, (_, i) => instance(i)), top: 3 });
    expect(res.status).toBe(200);
    expect(res.body.checkpoint).toBe('clf');
    expect(res.body.predictions).toHaveLength(test.n);
    const first = res.body.predictions[0];
    expect(first.top).toHaveLength(3);
    expect(first.top[0]).toEqual({ label: first.label, probability: first.probability });
    expect(first.top[0].probability).toBeGreaterThanOrEqual(first.top[1].probability);
    const correct = res.body.predictions.filter((p: { label: string }, i: number) => p.label === test.classes[test.labels[i]]).length;
    expect(correct / test.n).toBe(testAccuracy);
    expect(testAccuracy).toBeGreaterThan(0.3);
  });

  it('takes nested [h][w][c] arrays and PNG files, with the same numbers as flat arrays', async () => {
    const flat = await predict('clf', { instances: [instance(0), instance(1)] });
    const deep = await predict('clf', { instances: [nested(0), nested(1)] });
    const files = await request(t.app.server).post('/v1/checkpoints/clf/predict').attach('image', await png(0), 'a.png').attach('image', await png(1), 'b.png');
    expect(files.status).toBe(200);
    expect(deep.body).toEqual(flat.body);
    expect(files.body).toEqual(flat.body);
  });

  it('takes instances as raw float32 bytes and as a .npy file, with the same numbers as JSON', async () => {
    const flat = await predict('clf', { instances: [instance(0), instance(1)], top: 2 });
    const floats = Buffer.from(test.images.slice(0, 2 * SIZE).buffer);
    const raw = await request(t.app.server).post('/v1/checkpoints/clf/predict?top=2').set('content-type', 'application/octet-stream').send(floats);
    expect(raw.status).toBe(200);
    expect(raw.body).toEqual(flat.body);
    // np.save(f, x.astype('<f8').reshape(2, 28, 28, 1)): version 1 header, float64 narrowed to float32.
    const header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 28, 28, 1), }";
    const padded = header.padEnd(64 * Math.ceil((10 + header.length + 1) / 64) - 10 - 1, ' ') + '\n';
    const npy = Buffer.concat([Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]), Buffer.from(Uint16Array.of(padded.length).buffer), Buffer.from(padded, 'latin1'), Buffer.from(Float64Array.from(test.images.subarray(0, 2 * SIZE)).buffer)]);
    const numpy = await request(t.app.server).post('/v1/checkpoints/clf/predict?top=2').set('content-type', 'application/x-npy').send(npy);
    expect(numpy.status).toBe(200);
    expect(numpy.body).toEqual(flat.body);
    // Bytes that are not whole instances, and a dtype the model cannot take, are refused with what to send.
    const ragged = await request(t.app.server).post('/v1/checkpoints/clf/predict').set('content-type', 'application/octet-stream').send(floats.subarray(0, SIZE * 4 + 8));
    expect(ragged.status).toBe(422);
    expect(ragged.body.error).toMatchObject({ code: 'instance_shape_mismatch', param: '/instances' });
    const ints = Buffer.from(npy);
    ints.write("'<i8'", 10 + header.indexOf("'<f8'"), 'latin1');
    const wrongType = await request(t.app.server).post('/v1/checkpoints/clf/predict').set('content-type', 'application/x-npy').send(ints);
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.error).toMatchObject({ code: 'invalid_body', param: '/instances' });
    expect(wrongType.body.error.message).toContain("astype('<f4')");
    const tooMany = await request(t.app.server).post('/v1/checkpoints/clf/predict').set('content-type', 'application/octet-stream').send(Buffer.alloc(251 * SIZE * 4));
    expect(tooMany.status).toBe(413);
    expect(tooMany.body.error).toMatchObject({ code: 'too_many_instances' });
  });

  it('a checkpoint trained with symmetric scaling is evaluated and predicted with it, unasked; the wrong scaling changes the outputs', async () => {
    const base = classifierSpec('clf-sym', 1) as { dataset: Record<string, unknown> };
    const job = await request(t.app.server).post('/v1/jobs').send({ ...base, dataset: { ...base.dataset, preprocess: { scaling: 'symmetric' } } });
    expect(job.status).toBe(202);
    const done = await waitForJobEnd(t.app.server, job.body.id, 180_000, () => worker.output().slice(-2000));
    expect(done.status).toBe('succeeded');
    expect((await request(t.app.server).get('/v1/checkpoints/clf-sym')).body.manifest.preprocess).toMatchObject({ scaling: 'symmetric' });
    // An image file is scaled as the record says: the same numbers as the instance sent in [-1, 1].
    const symmetric = (i: number) => instance(i).map((v) => v * 2 - 1);
    const file = await request(t.app.server).post('/v1/checkpoints/clf-sym/predict').attach('image', await png(3), 'x.png');
    const right = await predict('clf-sym', { instances: [symmetric(3)] });
    const wrong = await predict('clf-sym', { instances: [instance(3)] });
    expect(file.status).toBe(200);
    expect(file.body.predictions[0].probability).toBeCloseTo(right.body.predictions[0].probability, 5);
    expect(file.body.predictions[0].label).toBe(right.body.predictions[0].label);
    expect(Math.abs(wrong.body.predictions[0].top[0].probability - right.body.predictions[0].top[0].probability) + (wrong.body.predictions[0].label === right.body.predictions[0].label ? 0 : 1)).toBeGreaterThan(1e-3);
    // An evaluate job feeds the split the same way: it reproduces the training job's test metrics.
    const evaluation = await request(t.app.server).post('/v1/jobs').send({ type: 'evaluate', source: { checkpoint: 'clf-sym' }, dataset: { name: 'digits', split: 'test' } });
    expect(evaluation.status).toBe(202);
    const evaluated = await waitForJobEnd(t.app.server, evaluation.body.id, 120_000, () => worker.output().slice(-2000));
    expect(evaluated.status).toBe('succeeded');
    expect(evaluated.result.metrics.test.accuracy).toBe(done.result.metrics.test.accuracy);
    expect(evaluated.result.metrics.test.loss).toBeCloseTo(done.result.metrics.test.loss, 3);
  }, 300_000);

  it('returns a layer\'s activations as an embedding', async () => {
    const res = await predict('clf', { instances: [instance(0), instance(1)], layer: 'enc_flatten' });
    expect(res.status).toBe(200);
    expect(res.body.outputs).toHaveLength(2);
    const units = res.body.shape.reduce((a: number, b: number) => a * b, 1);
    expect(res.body.outputs[0]).toHaveLength(units);
    expect(units).toBeGreaterThan(10);
    expect(res.body.outputs[0]).not.toEqual(res.body.outputs[1]);
  });

  it('refuses bad input with 4xx naming the instance', async () => {
    const short = await predict('clf', { instances: [instance(0), instance(1).slice(1)] });
    expect(short.status).toBe(422);
    expect(short.body.error).toMatchObject({ code: 'instance_shape_mismatch', param: '/instances/1' });

    const nan = instance(2);
    (nan as unknown[])[5] = null; // what JSON makes of NaN
    const notFinite = await predict('clf', { instances: [instance(0), instance(1), nan] });
    expect(notFinite.status).toBe(400);
    expect(notFinite.body.error).toMatchObject({ code: 'invalid_instance', param: '/instances/2' });

    const tooMany = await predict('clf', { instances: Array.from({ length: 251 }, () => [0]) });
    expect(tooMany.status).toBe(413);
    expect(tooMany.body.error).toMatchObject({ code: 'too_many_instances', param: '/instances' });

    const garbage = await request(t.app.server).post('/v1/checkpoints/clf/predict').attach('image', await png(0), 'ok.png').attach('image', Buffer.from('not an image at all'), 'bad.png');
    expect(garbage.status).toBe(422);
    expect(garbage.body.error).toMatchObject({ code: 'undecodable_image', param: '/instances/1' });

    const layer = await predict('clf', { instances: [instance(0)], layer: 'no_such_layer' });
    expect(layer.status).toBe(422);
    expect(layer.body.error).toMatchObject({ code: 'unknown_layer', param: '/layer' });
    expect(layer.body.error.message).toContain('no_such_layer');

    const missing = await predict('nope', { instances: [instance(0)] });
    expect(missing.status).toBe(404);
  });

  it('batches concurrent requests for one model into one predict', async () => {
    const before = await stats();
    const answers = await Promise.all(Array.from({ length: 16 }, (_, i) => predict('clf', { instances: [instance(i)] })));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const after = await stats();
    expect(after.instances - before.instances).toBe(16);
    // 16 single-instance requests within one 20 ms window: far fewer model calls than requests.
    expect(after.batches - before.batches).toBeLessThan(8);
    const grew = Object.keys(after.batchSizes).filter((size) => Number(size) > 1 && after.batchSizes[size] > (before.batchSizes[size] ?? 0));
    expect(grew.length).toBeGreaterThan(0);
    // The same counters on /metrics, for whoever watches the service.
    const scrape = (await request(t.app.server).get('/metrics')).text;
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(scrape)?.[1]);
    expect(value('graft_inference_instances_total')).toBe(after.instances);
    expect(value('graft_inference_batches_total')).toBe(after.batches);
    expect(value('graft_inference_processes')).toBe(1);
    expect(value('graft_inference_models_loaded')).toBe(after.models);
    expect(value('graft_inference_predictions_in_flight')).toBe(0);
  });

  const runJob = async (spec: object) => {
    const res = await request(t.app.server).post('/v1/jobs').send(spec);
    expect(res.status).toBe(202);
    const done = await waitForJobEnd(t.app.server, res.body.id, 120_000, () => worker.output().slice(-2000));
    expect(done.error).toBeNull();
    expect(done.status).toBe('succeeded');
    return done;
  };

  it("an evaluate job reports the training job's test metrics and its most confident mistakes", async () => {
    const done = await runJob({ type: 'evaluate', source: { checkpoint: 'clf' }, dataset: { name: 'digits', split: 'test' }, mistakes: 5 });
    evaluateJobId = done.id;
    expect(done.type).toBe('evaluate');
    const m = done.result.metrics.test;
    expect(m.accuracy).toBe(testAccuracy);
    expect(m.samples).toBe(test.n);
    expect(m.confusionMatrix).toEqual(trainingTest.confusionMatrix);
    expect(m.perClassAccuracy).toEqual(trainingTest.perClassAccuracy);
    expect(m.loss).toBeCloseTo(trainingTest.loss, 5);
    const wrong = test.n - Math.round(testAccuracy * test.n);
    expect(done.result.mistakes).toHaveLength(Math.min(5, wrong));
    for (const [k, mistake] of done.result.mistakes.entries()) {
      expect(mistake.label).toBe(test.classes[test.labels[mistake.index]]);
      expect(mistake.predicted).not.toBe(mistake.label);
      if (k > 0) expect(mistake.probability).toBeLessThanOrEqual(done.result.mistakes[k - 1].probability);
    }
    // The endpoint agrees about the most confident mistake.
    const top = done.result.mistakes[0];
    const res = await predict('clf', { instances: [instance(top.index)] });
    expect(res.body.predictions[0].label).toBe(top.predicted);
  });

  it('a predict job writes a JSONL file whose accuracy matches the evaluate job', async () => {
    const done = await runJob({ type: 'predict', source: { checkpoint: 'clf' }, dataset: { name: 'digits' }, top: 2 });
    const res = await request(t.app.server).get(`/v1/jobs/${done.id}/output`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toContain('application/x-ndjson');
    const lines = String(res.text ?? res.body).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(test.n);
    expect(lines[0].top).toHaveLength(2);
    expect(lines.map((l) => l.index)).toEqual(Array.from({ length: test.n }, (_, i) => i));
    const correct = lines.filter((l) => l.label === l.predicted).length;
    expect(correct / test.n).toBe(testAccuracy);
    expect(done.result.output).toMatchObject({ lines: test.n, accuracy: testAccuracy });
    const endpoint = await predict('clf', { instances: [instance(0), instance(1)] });
    expect(endpoint.body.predictions.map((p: { label: string }) => p.label)).toEqual([lines[0].predicted, lines[1].predicted]);

    const notPredict = await request(t.app.server).get(`/v1/jobs/${evaluateJobId}/output`);
    expect(notPredict.status).toBe(409);
    expect(notPredict.body.error.code).toBe('no_output');
  });

  it('refuses a use job whose checkpoint or dataset is missing, with the training jobs\' codes', async () => {
    const noCheckpoint = await request(t.app.server).post('/v1/jobs').send({ type: 'evaluate', source: { checkpoint: 'nope' }, dataset: { name: 'digits' } });
    expect(noCheckpoint.status).toBe(422);
    expect(noCheckpoint.body.error).toMatchObject({ code: 'checkpoint_not_found', param: '/source/checkpoint' });
    const stray = await request(t.app.server).post('/v1/jobs').send({ type: 'predict', source: { checkpoint: 'clf' }, dataset: { name: 'digits' }, output: { checkpoint: 'x' } });
    expect(stray.status).toBe(400);
    expect(stray.body.error).toMatchObject({ code: 'unknown_field', param: '/output' });
  });

  it('replaces a crashed inference process on the next request', async () => {
    const { pid } = await stats();
    process.kill(pid, 'SIGKILL');
    const res = await waitFor(async () => {
      const r = await predict('clf', { instances: [instance(0)] });
      if (r.status === 503) expect(r.headers['retry-after']).toBeDefined();
      return r.status === 200 ? r : null;
    }, 60_000, 'a prediction after the inference process was killed', 100);
    expect(res.body.predictions).toHaveLength(1);
    expect((await stats()).pid).not.toBe(pid);
  });

  it('evicts a deleted checkpoint from the inference processes', async () => {
    await request(t.app.server).post('/v1/jobs').send(classifierSpec('clf-2', 1)).then((r) => waitForJobEnd(t.app.server, r.body.id, 180_000));
    expect((await predict('clf-2', { instances: [instance(0)] })).status).toBe(200);
    const before = await stats();
    expect(before.models).toBe(2);
    const del = await request(t.app.server).delete('/v1/checkpoints/clf-2');
    expect(del.status).toBe(204);
    const after = await stats();
    expect(after.models).toBe(1);
    expect(after.evictions).toBe(before.evictions + 1);
    expect((await predict('clf-2', { instances: [instance(0)] })).status).toBe(404);
  }, 200_000);
});
