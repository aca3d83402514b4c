import request from 'supertest';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';
import { classifierSpec, waitForJobEnd } from '../helpers/jobs';
import { freePort, startProcess, type RunningProcess } from '../helpers/processes';
import { parsePrometheusText, sampleValue, samplesOf } from '../helpers/prometheus';

/**
 * Prometheus metrics of a running graft (API and one worker as processes): after one failed, one
 * cancelled and one succeeded job the worker counts exactly those, and both endpoints parse.
 */
describe('metrics', () => {
  let env: TestEnv;
  let api: RunningProcess;
  let worker: RunningProcess;
  let url: string;
  let workerMetricsUrl: string;

  beforeAll(async () => {
    env = await makeTestEnv({ WORKER_CONCURRENCY: '1' });
    await writeMnistDataset(env.dataDir, 'digits', { train: 300, test: 60 });
    const [port, metricsPort] = [await freePort(), await freePort()];
    url = `http://127.0.0.1:${port}`;
    workerMetricsUrl = `http://127.0.0.1:${metricsPort}`;
    api = startProcess('api', { ...env.env, PORT: String(port), HOST: '127.0.0.1' });
    worker = startProcess('worker', { ...env.env, HOST: '127.0.0.1', WORKER_METRICS_PORT: String(metricsPort) });
    await waitFor(async () => (await request(url).get('/readyz').catch(() => null))?.status === 200, 60_000, `the API to be ready (${api.output()})`);
    await waitFor(async () => (await fetch(`${workerMetricsUrl}/metrics`).catch(() => null))?.ok, 60_000, `the worker's metrics listener (${worker.output()})`);
  }, 120_000);

  afterAll(async () => {
    const codes = await Promise.all([api, worker].map((p) => p.stop()));
    await env.cleanup();
    expect(codes).toEqual([0, 0]);
  });

  const scrape = async (base: string) => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return parsePrometheusText(await res.text());
  };
  const logs = () => `(worker: ${worker.output().slice(-2000)})`;

  it('counts one failed, one cancelled and one succeeded job exactly', async () => {
    const before = await scrape(workerMetricsUrl);
    expect(sampleValue(before, 'graft_worker_up')).toBe(1);
    expect(samplesOf(before, 'graft_jobs_finished_total')).toHaveLength(0);

    // cancelled: a long job, cancelled while it runs
    const long = await request(url).post('/v1/jobs').send(classifierSpec('long', 200));
    expect(long.status).toBe(202);
    await waitFor(async () => (await request(url).get(`/v1/jobs/${long.body.id}`)).body.progress?.phase === 'training', 60_000, `the long job to train ${logs()}`);
    const running = await scrape(workerMetricsUrl);
    expect(sampleValue(running, 'graft_worker_active_jobs')).toBe(1);
    expect((await request(url).post(`/v1/jobs/${long.body.id}/cancel`)).status).toBe(202);
    expect((await waitForJobEnd(url, long.body.id, 60_000, logs)).status).toBe('cancelled');

    // failed: training outlives its maxRuntimeSeconds
    const slow = classifierSpec('slow', 500);
    const timedOut = await request(url).post('/v1/jobs').send({ ...slow, training: { ...slow.training, maxRuntimeSeconds: 1 } });
    expect(timedOut.status).toBe(202);
    const failed = await waitForJobEnd(url, timedOut.body.id, 60_000, logs);
    expect(failed.status).toBe('failed');
    expect(failed.error.code).toBe('timeout');

    // succeeded
    const ok = await request(url).post('/v1/jobs').send(classifierSpec('ok', 2));
    const done = await waitForJobEnd(url, ok.body.id, 120_000, logs);
    expect(done.status).toBe('succeeded');

    const after = await waitFor(async () => {
      const m = await scrape(workerMetricsUrl);
      return samplesOf(m, 'graft_jobs_finished_total').reduce((n, s) => n + s.value, 0) === 3 ? m : null;
    }, 10_000, 'the third job to be counted');
    const finished = samplesOf(after, 'graft_jobs_finished_total').map((s) => ({ ...s.labels, value: s.value }) as Record<string, string | number>);
    const worker_ = finished[0].worker;
    expect(worker_).toMatch(/:\d+$/);
    expect(finished.map(({ worker: _w, ...rest }) => rest).sort((a, b) => String(a.status).localeCompare(String(b.status)))).toEqual([
      { type: 'pretrain', status: 'cancelled', backend: 'none', value: 1 },
      { type: 'pretrain', status: 'failed', backend: 'none', value: 1 },
      { type: 'pretrain', status: 'succeeded', backend: done.result.backend, value: 1 },
    ]);
    expect(sampleValue(after, 'graft_job_duration_seconds_count', { status: 'succeeded' })).toBe(1);
    expect(sampleValue(after, 'graft_job_duration_seconds_count', { status: 'failed' })).toBe(1);
    expect(sampleValue(after, 'graft_job_duration_seconds_count', { status: 'cancelled' })).toBe(1);
    // the succeeded job's two epochs (the others may have finished some epochs before they ended)
    expect(sampleValue(after, 'graft_epoch_duration_seconds_count')).toBeGreaterThanOrEqual(2);
    expect(sampleValue(after, 'graft_worker_active_jobs')).toBe(0);
    expect(sampleValue(after, 'graft_worker_process_cpu_seconds_total')).toBeGreaterThan(0);

    const apiMetrics = await scrape(url);
    expect(sampleValue(apiMetrics, 'graft_http_request_duration_seconds_count', { method: 'POST', route: '/v1/jobs', status_code: '202' })).toBe(3);
    expect(sampleValue(apiMetrics, 'graft_http_request_duration_seconds_count', { method: 'POST', route: '/v1/jobs/:id/cancel', status_code: '202' })).toBe(1);
    expect(sampleValue(apiMetrics, 'graft_queue_jobs', { state: 'active' })).toBe(0);
    expect(sampleValue(apiMetrics, 'graft_queue_jobs', { state: 'waiting' })).toBe(0);
    expect(sampleValue(apiMetrics, 'graft_api_process_resident_memory_bytes')).toBeGreaterThan(0);
    // the scrape itself is in flight while it is collected
    expect(sampleValue(apiMetrics, 'graft_http_requests_in_flight')).toBe(0);
  }, 300_000);

  it('counts open SSE streams', async () => {
    const job = await request(url).post('/v1/jobs').send(classifierSpec('sse', 100));
    const controller = new AbortController();
    const res = await fetch(`${url}/v1/jobs/${job.body.id}/events`, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
    expect(res.status).toBe(200);
    const open = await scrape(url);
    expect(sampleValue(open, 'graft_sse_streams_open')).toBe(1);
    expect(sampleValue(open, 'graft_http_requests_in_flight')).toBe(1);
    controller.abort();
    await request(url).post(`/v1/jobs/${job.body.id}/cancel`);
    await waitFor(async () => sampleValue(await scrape(url), 'graft_sse_streams_open') === 0, 10_000, 'the stream to be counted closed');
    await waitForJobEnd(url, job.body.id, 60_000, logs);
  }, 120_000);
});
