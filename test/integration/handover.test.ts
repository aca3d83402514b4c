import { promises as fs } from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { buildTestApp, type TestApp } from '../helpers/app';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env';
import { checkpointNames, childrenOf, entries, sleep, workerPid } from '../helpers/faults';
import { writeMnistDataset } from '../helpers/fixtures';
import { classifierSpec, waitForJobEnd } from '../helpers/jobs';
import { startProcess, type RunningProcess } from '../helpers/processes';

/**
 * Hand-overs and lost locks, with real worker processes: a graceful hand-over costs no attempt,
 * and a worker that lost its lock neither writes the output nor marks the job.
 */

interface Events {
  data: { message: string; data: Record<string, unknown> | null }[];
}

const position = (p: { epoch: number; batch: number } | null | undefined) => (p ? p.epoch * 10_000 + p.batch : -1);

describe('faults around the lock of a running job', () => {
  let env: TestEnv;
  let t: TestApp;
  let workers: RunningProcess[] = [];

  afterEach(async () => {
    for (const w of workers) {
      if (w.child.exitCode === null && w.child.signalCode === null) {
        for (const pid of [w.child.pid!, ...childrenOf(w.child.pid!)]) process.kill(pid, 'SIGCONT');
      }
    }
    await Promise.all(workers.map((w) => w.stop()));
    workers = [];
    await t.close();
    await env.cleanup();
  });

  const get = async (id: string) => (await request(t.app.server).get(`/v1/jobs/${id}`)).body;
  const events = async (id: string) => ((await request(t.app.server).get(`/v1/jobs/${id}/events?limit=1000`)).body as Events).data;
  const logs = () => workers.map((w) => w.output().slice(-1500)).join('\n--\n');

  it('JOB_ATTEMPTS=2 and 5 SIGTERMs in a row (a new worker each time): resumes each time, succeeds, one checkpoint', async () => {
    env = await makeTestEnv({ JOB_ATTEMPTS: '2', RETRY_BACKOFF_MS: '200', EPOCH_CHECKPOINTS_KEEP: '2' });
    await writeMnistDataset(env.dataDir, 'digits', { train: 1000, test: 50 });
    t = await buildTestApp(env);
    // Long enough that five hand-overs never catch the job finishing (on a slow, shared machine a
    // round can otherwise straddle the last batch and the job end before the SIGTERM lands).
    const sub = await request(t.app.server).post('/v1/jobs').send(classifierSpec('relay', 10, 3));
    expect(sub.status).toBe(202);
    let last = -1;
    // The next worker is started while the current one trains (it idles until the hand-over), so
    // each round costs a hand-over, not a process start-up.
    let current = startProcess('worker', env.env);
    workers.push(current);
    for (let round = 0; round < 5; round++) {
      const w = current;
      // Training on this worker, past the point the previous one handed over.
      const running = await waitFor(async () => {
        const j = await get(sub.body.id);
        return j.status === 'running' && workerPid(j.worker) === w.child.pid && j.progress?.phase === 'training' && position(j.progress) > last ? j : null;
      }, 90_000, `round ${round}: training on the new worker (${logs()})`, 20);
      last = position(running.progress);
      current = startProcess('worker', env.env);
      workers.push(current);
      await sleep(500);
      expect(await w.stop(30_000)).toBe(0);
      const after = await get(sub.body.id);
      // Handed back (queued), or already taken by the next worker; never failed, never still on the stopped one.
      const handedOver = after.status === 'queued' || (after.status === 'running' && workerPid(after.worker) === current.child.pid);
      expect({ round, status: after.status, worker: after.worker, handedOver }).toMatchObject({ round, handedOver: true });
      expect(after.error).toBeNull();
    }
    const job = await t.services.queue.queue.getJob(sub.body.id);
    expect(job?.attemptsMade).toBe(0); // five hand-overs, no attempt spent
    const done = await waitForJobEnd(t.app.server, sub.body.id, 120_000, logs);
    expect(done.error).toBeNull();
    expect(done.status).toBe('succeeded');
    expect(done.attempts).toBe(6);
    const messages = (await events(sub.body.id)).map((e) => e.message);
    expect(messages.filter((m) => /shutting down: training was checkpointed/.test(m))).toHaveLength(5);
    expect(messages.filter((m) => /^Resuming from the checkpoint/.test(m))).toHaveLength(5);
    expect((await checkpointNames(env.dataDir)).filter((n) => n === 'relay')).toHaveLength(1);
    const manifest = JSON.parse(await fs.readFile(path.join(env.dataDir, 'tenants', 'default', 'checkpoints', 'relay', 'manifest.json'), 'utf8'));
    expect(manifest.jobId).toBe(sub.body.id);
    expect(manifest.history.map((h: { epoch: number }) => h.epoch)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  }, 300_000);

  it('SIGSTOP of the worker holding a job past its lock while a second worker runs, then SIGCONT: one success, one checkpoint, nothing half-written', async () => {
    env = await makeTestEnv({ JOB_ATTEMPTS: '3', RETRY_BACKOFF_MS: '200', EPOCH_CHECKPOINTS_KEEP: '2', WORKER_LOCK_SECONDS: '2' });
    await writeMnistDataset(env.dataDir, 'digits', { train: 2000, test: 100 });
    t = await buildTestApp(env);
    workers = [startProcess('worker', env.env), startProcess('worker', env.env)];
    const sub = await request(t.app.server).post('/v1/jobs').send(classifierSpec('paused', 3, 5));
    const running = await waitFor(async () => {
      const j = await get(sub.body.id);
      return j.status === 'running' && j.progress?.phase === 'training' && position(j.progress) >= position({ epoch: 1, batch: 5 }) ? j : null;
    }, 60_000, `job mid-training (${logs()})`, 20);
    const holder = workers.find((w) => w.child.pid === workerPid(running.worker))!;
    const other = workers.find((w) => w !== holder)!;
    // The whole host freezes: the worker and its training child.
    const frozen = [holder.child.pid!, ...childrenOf(holder.child.pid!)];
    for (const pid of frozen) process.kill(pid, 'SIGSTOP');
    // Past the lock: the other worker takes the job over and trains it.
    await waitFor(async () => {
      const j = await get(sub.body.id);
      return j.status === 'running' && workerPid(j.worker) === other.child.pid && j.progress?.phase === 'training' ? j : null;
    }, 30_000, `the other worker to take over (${logs()})`, 50);
    await sleep(1500);
    for (const pid of frozen) process.kill(pid, 'SIGCONT');

    const done = await waitForJobEnd(t.app.server, sub.body.id, 120_000, logs);
    expect(done.error).toBeNull();
    expect(done.status).toBe('succeeded');
    expect(workerPid(done.worker)).toBe(other.child.pid);
    // The thawed worker gives up the job it lost, writes nothing, and stays healthy.
    await sleep(3000);
    expect(await get(sub.body.id)).toMatchObject({ status: 'succeeded', error: null });
    expect(await checkpointNames(env.dataDir)).toEqual(['paused']);
    expect(await entries(path.join(env.dataDir, '.tmp'))).toEqual([]);
    expect((await request(t.app.server).get('/v1/checkpoints/paused')).status).toBe(200);
    expect((await request(t.app.server).get('/v1/jobs?status=failed')).body.data).toEqual([]);
    const messages = (await events(sub.body.id)).map((e) => e.message);
    expect(messages.filter((m) => /^Job succeeded/.test(m))).toHaveLength(1);
    expect(holder.child.exitCode).toBeNull();
  }, 240_000);
});
