import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { DIST, makeTempDir, makeTestEnv, waitFor, type TestEnv } from '../helpers/env';
import { writeMnistDataset } from '../helpers/fixtures';
import { classifierSpec } from '../helpers/jobs';
import { freePort, startProcess, type RunningProcess } from '../helpers/processes';

const CLI = path.join(DIST, 'src', 'cli', 'main.js');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The built `graft` CLI against a running API and worker (processes), through the seed scenario:
 * upload a dataset folder, plan, submit with --watch, list, show, logs, download; with the exit
 * codes checked, and API errors printed as the API's message.
 */
describe('graft CLI', () => {
  let env: TestEnv;
  let api: RunningProcess;
  let worker: RunningProcess;
  let url: string;
  let work: string;

  const graft = (args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { cwd: work, env: { PATH: process.env.PATH ?? '', GRAFT_URL: url, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });

  beforeAll(async () => {
    env = await makeTestEnv({ WORKER_CONCURRENCY: '1', WORKER_METRICS_PORT: '0' });
    work = await makeTempDir('graft-cli-');
    // The dataset is made outside the volume and arrives through `graft upload`.
    const scratch = await makeTempDir('graft-cli-data-');
    const made = await writeMnistDataset(scratch, 'digits', { train: 300, test: 60 });
    await fs.rename(made, path.join(work, 'digits'));
    await fs.rm(scratch, { recursive: true, force: true });
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    api = startProcess('api', { ...env.env, PORT: String(port), HOST: '127.0.0.1' });
    worker = startProcess('worker', env.env);
    await waitFor(async () => (await request(url).get('/readyz').catch(() => null))?.status === 200, 60_000, `the API to be ready (${api.output()})`);
  }, 120_000);

  afterAll(async () => {
    const codes = await Promise.all([api, worker].map((p) => p.stop()));
    await env.cleanup();
    await fs.rm(work, { recursive: true, force: true });
    expect(codes).toEqual([0, 0]);
  });

  it('runs the seed scenario: upload, plan, submit --watch, jobs, show, logs, download', async () => {
    const upload = await graft(['upload', 'dataset', 'digits', 'digits', '--json']);
    expect(upload.stderr).toBe('');
    expect(upload.code).toBe(0);
    expect(JSON.parse(upload.stdout)).toMatchObject({ name: 'digits', format: 'idx' });

    await fs.writeFile(path.join(work, 'spec.json'), JSON.stringify(classifierSpec('cli-digits', 2)));
    const plan = await graft(['plan', 'spec.json']);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/LAYER\s+CLASS\s+OUTPUT SHAPE\s+PARAMS/);
    expect(plan.stdout).toContain('valid: POST /v1/jobs would accept this spec');

    const submit = await graft(['submit', 'spec.json', '--watch']);
    expect(submit.code).toBe(0);
    expect(submit.stderr).toMatch(/submitted; watching/);
    expect(submit.stderr).toMatch(/Epoch 1: loss/);
    expect(submit.stderr).toMatch(/Epoch 2: loss/);
    expect(submit.stderr).toMatch(/Job succeeded\./);
    expect(submit.stdout).toMatch(/status\s+succeeded/);
    const id = /^id\s+(\S+)/m.exec(submit.stdout)![1];

    const jobs = await graft(['jobs', '--json', '--status', 'succeeded']);
    expect(jobs.code).toBe(0);
    expect(JSON.parse(jobs.stdout).data.map((j: { id: string }) => j.id)).toEqual([id]);
    const table = await graft(['jobs']);
    expect(table.stdout).toMatch(new RegExp(`${id}\\s+pretrain\\s+succeeded\\s+cli-digits`));

    const show = await graft(['show', id, '--json']);
    expect(JSON.parse(show.stdout)).toMatchObject({ id, status: 'succeeded', result: { checkpoint: 'cli-digits' } });

    const logs = await graft(['logs', '-f', id]);
    expect(logs.code).toBe(0);
    expect(logs.stdout.trim().split('\n').length).toBeGreaterThanOrEqual(5);
    expect(logs.stdout).toMatch(/Job queued\.[\s\S]*Job running\.[\s\S]*Epoch 2[\s\S]*Job succeeded\./);

    const download = await graft(['download', 'cli-digits', '-o', 'net.tar.gz']);
    expect(download.code).toBe(0);
    const bytes = await fs.readFile(path.join(work, 'net.tar.gz'));
    expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    // the archive goes back in unchanged as a new checkpoint
    const back = await graft(['upload', 'checkpoint', 'cli-digits-copy', 'net.tar.gz', '--json']);
    expect(back.code).toBe(0);
    expect(JSON.parse(back.stdout).name).toBe('cli-digits-copy');
  }, 240_000);

  it('exits 2 when a watched job fails, 3 when it is cancelled, and cancels', async () => {
    const slow = classifierSpec('cli-slow', 500);
    await fs.writeFile(path.join(work, 'slow.json'), JSON.stringify({ ...slow, training: { ...slow.training, maxRuntimeSeconds: 1 } }));
    const failed = await graft(['submit', 'slow.json', '--watch']);
    expect(failed.code).toBe(2);
    expect(failed.stdout).toMatch(/error\s+timeout: Training exceeded/);

    await fs.writeFile(path.join(work, 'long.json'), JSON.stringify(classifierSpec('cli-long', 500)));
    const watching = graft(['submit', 'long.json', '--watch']);
    const running = await waitFor(async () => (await request(url).get('/v1/jobs?status=running')).body.data[0], 60_000, 'the long job to run');
    const follower = graft(['logs', '-f', running.id]);
    const cancel = await graft(['cancel', running.id]);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toMatch(/cancellation requested/);
    const watched = await watching;
    expect(watched.code).toBe(3);
    expect(watched.stdout).toMatch(/status\s+cancelled/);
    const followed = await follower;
    expect(followed.code).toBe(0);
    expect(followed.stdout).toMatch(/Job cancelled\.\n$/);
  }, 180_000);

  it('prints the API\'s message, not a stack, and exits 1', async () => {
    const missing = await graft(['show', 'no-such-job']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^graft: .+\[404 job_not_found\]\n$/);
    expect(missing.stderr).not.toMatch(/\n\s+at /);

    const unreachable = await graft(['jobs'], { GRAFT_URL: 'http://127.0.0.1:1' });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^graft: Cannot reach graft at http:\/\/127\.0\.0\.1:1 .*set GRAFT_URL\.\n$/);

    await fs.writeFile(path.join(work, 'bad.json'), JSON.stringify({ type: 'transfer', dataset: { name: 'digits' }, output: { checkpoint: 'x' } }));
    const bad = await graft(['submit', 'bad.json']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^graft: .+\[4\d\d \w+\]\n$/);

    const usage = await graft(['upload', 'model', 'x', '.']);
    expect(usage.code).toBe(64);
  });
});
