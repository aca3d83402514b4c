import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';

/**
 * The load generator of bench:predict. The bench, the API and its inference process share this
 * machine's two vCPUs, so every microsecond the load generator spends per request is taken from
 * the server being measured. Measured on this VM (the load generator's CPU time over the requests
 * it completed, 32 clients against the predict route): wrk (C, one epoll thread) 12–21 µs per
 * request, autocannon 21–56 µs (README, "Predictions"). The bench uses wrk when it is installed
 * (`apt-get install wrk`) and autocannon otherwise, and prints which it used.
 * BENCH_LOADGEN=autocannon forces autocannon.
 */
export type LoadGenerator = 'wrk' | 'autocannon';

export interface LoadRequest {
  method: 'POST' | 'GET';
  headers: Record<string, string>;
  body?: string | Buffer;
}

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-2xx answers, socket errors and timeouts. */
  errors: number;
}

/** wrk's own deadline for one answer (its default, 2 s, would count a slow MobileNet batch as an error). */
const WRK_TIMEOUT_S = 30;

export function pickLoadGenerator(): LoadGenerator {
  if (process.env.BENCH_LOADGEN === 'autocannon') return 'autocannon';
  const probe = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  const found = !probe.error && /wrk/.test(`${probe.stdout}${probe.stderr}`);
  if (process.env.BENCH_LOADGEN === 'wrk' && !found) throw new Error('BENCH_LOADGEN=wrk, but wrk is not installed (apt-get install wrk)');
  return found ? 'wrk' : 'autocannon';
}

/** `clients` connections, each sending `req` again as soon as the previous answer arrives, for `seconds`. */
export function drive(generator: LoadGenerator, url: string, req: LoadRequest, clients: number, seconds: number): Promise<LoadResult> {
  return generator === 'wrk' ? driveWrk(url, req, clients, seconds) : driveAutocannon(url, req, clients, seconds);
}

async function driveAutocannon(url: string, req: LoadRequest, clients: number, seconds: number): Promise<LoadResult> {
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    autocannon({ url, connections: clients, duration: seconds, ...req }, (err, r) => (err ? reject(err) : resolve(r)));
  });
  return { requestsPerSecond: result.requests.average, p50Ms: result.latency.p50, p99Ms: result.latency.p99, errors: result.non2xx + result.errors + result.timeouts };
}

/** Lua string literal of any bytes (wrk's Lua strings are byte strings). */
function luaString(s: string): string {
  return `"${s.replace(/[\\"\r\n]/g, (c) => ({ '\\': '\\\\', '"': '\\"', '\r': '\\r', '\n': '\\n' })[c]!)}"`;
}

async function driveWrk(url: string, req: LoadRequest, clients: number, seconds: number): Promise<LoadResult> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'graft-wrk-'));
  try {
    const bodyFile = path.join(dir, 'body');
    const script = path.join(dir, 'request.lua');
    if (req.body !== undefined) await fs.writeFile(bodyFile, req.body);
    await fs.writeFile(
      script,
      [
        `wrk.method = ${luaString(req.method)}`,
        ...Object.entries(req.headers).map(([k, v]) => `wrk.headers[${luaString(k)}] = ${luaString(v)}`),
        req.body !== undefined ? `local f = assert(io.open(${luaString(bodyFile)}, "rb")); wrk.body = f:read("*a"); f:close()` : '',
        // One JSON line at the end: requests, seconds, errors, latency percentiles (µs).
        'done = function(s, latency, requests)',
        '  local e = s.errors',
        '  io.write(string.format(\'\\nRESULT {"requests":%d,"durationUs":%d,"errors":%d,"p50Us":%d,"p99Us":%d}\\n\',',
        '    s.requests, s.duration, e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50), latency:percentile(99)))',
        'end',
      ].join('\n'),
    );
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('wrk', ['-t1', `-c${clients}`, `-d${seconds}s`, `--timeout`, `${WRK_TIMEOUT_S}s`, '-s', script, url], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited with ${code}: ${text}`))));
    });
    const line = /^RESULT (.*)$/m.exec(out);
    if (!line) throw new Error(`wrk printed no result: ${out}`);
    const r = JSON.parse(line[1]) as { requests: number; durationUs: number; errors: number; p50Us: number; p99Us: number };
    return { requestsPerSecond: r.requests / (r.durationUs / 1e6), p50Ms: r.p50Us / 1000, p99Ms: r.p99Us / 1000, errors: r.errors };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
