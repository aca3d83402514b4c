import http from 'node:http';
import { Redis } from 'ioredis';
import request from 'supertest';
import { eventHubConnectionName } from '../../src/api/services';
import { QUEUED_EVENT_ID } from '../../src/jobs/job-events';
import { buildTestApp, type TestApp } from '../helpers/app';
import { makeTestEnv, TEST_REDIS_URL, waitFor, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';
import { classifierSpec } from '../helpers/jobs';
import { readSse } from '../helpers/sse';

/**
 * Event streams share one Redis reader per API process (the EventHub): many clients, one
 * connection; a cap on open streams; nothing left behind when clients go away.
 */

const MAX_STREAMS = 6;

/** Opens an SSE stream and resolves once its headers arrived (the stream is then subscribed). */
function openStream(url: string): Promise<{ status: number; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, close: () => req.destroy() });
    });
    req.on('error', (err) => {
      if (!req.destroyed) reject(err);
    });
  });
}

describe('event streams (one reader per process)', () => {
  let env: TestEnv;
  let t: TestApp;
  let base: string;
  let redis: Redis;
  let jobId: string;

  const hubConnections = async () => {
    const list = (await redis.client('LIST')) as string;
    return list.split('\n').filter((line) => line.includes(` name=${eventHubConnectionName(env.queueName)} `)).length;
  };
  const append = (message: string) => t.services.store.events.append(jobId, { message });

  beforeAll(async () => {
    env = await makeTestEnv({ SSE_MAX_STREAMS: String(MAX_STREAMS), PRESSURE_RETRY_AFTER_SECONDS: '3' });
    await writeMnistDataset(env.dataDir, 'digits', { train: 50, test: 10 });
    t = await buildTestApp(env);
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
    redis = new Redis(TEST_REDIS_URL);
    // No worker: the job stays queued, so its streams stay open until the test cancels it.
    const sub = await request(t.app.server).post('/v1/jobs').send(classifierSpec('streamed', 1));
    expect(sub.status).toBe(202);
    jobId = sub.body.id;
  }, 60_000);

  afterAll(async () => {
    await redis.quit();
    await t.close();
    await env.cleanup();
  });

  it(`caps open streams at SSE_MAX_STREAMS (429 with Retry-After), and nothing leaks when clients go away`, async () => {
    const hub = t.services.deps.events;
    const url = `${base}/v1/jobs/${jobId}/events`;
    for (let round = 0; round < 3; round++) {
      const open = await Promise.all(Array.from({ length: MAX_STREAMS }, () => openStream(url)));
      expect(open.map((s) => s.status)).toEqual(Array(MAX_STREAMS).fill(200));
      expect(hub.subscriberCount).toBe(MAX_STREAMS);
      expect(hub.streamCount).toBe(1);

      const refused = await request(base).get(`/v1/jobs/${jobId}/events`).set('accept', 'text/event-stream');
      expect(refused.status).toBe(429);
      expect(refused.headers['retry-after']).toBe('3');
      expect(refused.body.error).toMatchObject({ code: 'too_many_streams', param: null });
      // Plain JSON reads of the journal are not streams: never refused.
      expect((await request(base).get(`/v1/jobs/${jobId}/events`)).status).toBe(200);

      for (const s of open) s.close();
      await waitFor(async () => hub.subscriberCount === 0, 5000, 'subscribers to go away');
      expect(hub.streamCount).toBe(0);
      // Every stream of every round shared one Redis connection.
      expect(await hubConnections()).toBe(1);
    }
  }, 60_000);

  it('fans the same events out to every client, each from its own cursor, without gaps or duplicates', async () => {
    await append('before anyone listened');
    const history = (await request(base).get(`/v1/jobs/${jobId}/events?limit=1000`)).body.data as { id: string }[];
    const url = `${base}/v1/jobs/${jobId}/events`;
    const fromStart = [readSse(url, { timeoutMs: 20_000 }), readSse(url, { timeoutMs: 20_000 })];
    const fromLast = readSse(url, { lastEventId: history[history.length - 1].id, timeoutMs: 20_000 });
    await waitFor(async () => t.services.deps.events.subscriberCount === 3, 5000, 'three subscribers');
    for (let i = 0; i < 5; i++) await append(`live ${i}`);
    // Cancelling the queued job ends it; the streams drain and end.
    expect((await request(base).post(`/v1/jobs/${jobId}/cancel`)).status).toBe(200);

    const [a, b, c] = await Promise.all([...fromStart, fromLast]);
    const all = (await request(base).get(`/v1/jobs/${jobId}/events?limit=1000`)).body.data as { id: string; message: string }[];
    // The first event is made from the record (nothing stored), in the listing and in the streams alike.
    expect(all[0]).toMatchObject({ id: QUEUED_EVENT_ID, message: 'Job queued.' });
    for (const stream of [a, b]) {
      expect(stream.ended).toBe(true);
      expect(stream.events.map((e) => e.id)).toEqual(all.map((e) => e.id));
    }
    expect(c.ended).toBe(true);
    expect(c.events.map((e) => e.id)).toEqual(all.slice(history.length).map((e) => e.id));
    expect(c.events.map((e) => e.data.message).slice(0, 5)).toEqual(['live 0', 'live 1', 'live 2', 'live 3', 'live 4']);
    await waitFor(async () => t.services.deps.events.subscriberCount === 0, 5000, 'ended streams to unsubscribe');
    expect(await hubConnections()).toBe(1);
  }, 60_000);
});
