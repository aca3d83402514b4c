import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import createClient, { type Client } from 'openapi-fetch';
import type { paths } from '../client/api-types';
import { createTarGz } from '../storage/archive';

/**
 * graft's HTTP API for the CLI, typed from the committed OpenAPI document (src/client/api-types.ts
 * is generated from openapi/openapi.json), so a route change that breaks a command fails `tsc`.
 * JSON routes go through openapi-fetch; streams (uploads, downloads, SSE) use fetch directly but
 * take their result types from the same document.
 */
export type Job = paths['/v1/jobs/{id}']['get']['responses'][200]['content']['application/json'];
export type JobSpec = paths['/v1/jobs']['post']['requestBody']['content']['application/json'];
export type JobList = paths['/v1/jobs']['get']['responses'][200]['content']['application/json'];
export type JobStatus = NonNullable<NonNullable<paths['/v1/jobs']['get']['parameters']['query']>['status']>;
export type Plan = paths['/v1/plans']['post']['responses'][200]['content']['application/json'];
export type JobEvent = paths['/v1/jobs/{id}/events']['get']['responses'][200]['content']['application/json']['data'][number];
export type DatasetDescription = paths['/v1/datasets']['post']['responses'][201]['content']['application/json'];
export type CheckpointDescription = paths['/v1/checkpoints']['post']['responses'][201]['content']['application/json'];

/** An error answered by the API (its own message and code) or a failure to reach it. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly code: string,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

interface ErrorBody {
  error?: { code?: string; message?: string; param?: string | null };
}

function apiError(status: number, body: unknown): ApiError {
  const e = (body as ErrorBody | undefined)?.error;
  return new ApiError(e?.message ?? `The API answered ${status}.`, status, e?.code ?? `http_${status}`, e?.param ?? null);
}

export class GraftApi {
  private readonly client: Client<paths>;
  private readonly headers: Record<string, string>;

  constructor(
    readonly baseUrl: string,
    key?: string,
  ) {
    this.headers = key ? { authorization: `Bearer ${key}` } : {};
    this.client = createClient<paths>({ baseUrl: baseUrl.replace(/\/$/, ''), headers: this.headers, fetch: (req) => this.fetch(req) });
  }

  /** fetch that turns "connection refused" into a sentence naming GRAFT_URL. */
  private async fetch(input: Request | string, init?: RequestInit): Promise<Response> {
    try {
      return await fetch(input, init);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError(`Cannot reach graft at ${this.baseUrl} (${cause?.code ?? cause?.message ?? (err as Error).message}); set GRAFT_URL.`, null, 'unreachable');
    }
  }

  private url(p: string): string {
    return this.baseUrl.replace(/\/$/, '') + p;
  }

  private static unwrap<T>(r: { data?: T; error?: unknown; response: Response }): T {
    if (r.error !== undefined || r.data === undefined) throw apiError(r.response.status, r.error);
    return r.data;
  }

  async listJobs(query: { status?: JobStatus; limit?: number; cursor?: string }): Promise<JobList> {
    return GraftApi.unwrap(await this.client.GET('/v1/jobs', { params: { query: { limit: 20, ...query } } }));
  }

  async getJob(id: string): Promise<Job> {
    return GraftApi.unwrap(await this.client.GET('/v1/jobs/{id}', { params: { path: { id } } }));
  }

  async submit(spec: JobSpec, idempotencyKey?: string): Promise<Job> {
    return GraftApi.unwrap(await this.client.POST('/v1/jobs', { body: spec, headers: idempotencyKey ? { 'idempotency-key': idempotencyKey } : {} }));
  }

  async cancel(id: string): Promise<Job> {
    return GraftApi.unwrap(await this.client.POST('/v1/jobs/{id}/cancel', { params: { path: { id } } }));
  }

  async plan(spec: JobSpec): Promise<Plan> {
    return GraftApi.unwrap(await this.client.POST('/v1/plans', { body: spec }));
  }

  async events(id: string, after?: string): Promise<JobEvent[]> {
    const out: JobEvent[] = [];
    let cursor = after;
    for (;;) {
      const page = GraftApi.unwrap(await this.client.GET('/v1/jobs/{id}/events', { params: { path: { id }, query: { limit: 1000, ...(cursor ? { after: cursor } : {}) } } }));
      out.push(...page.data);
      if (!page.nextCursor) return out;
      cursor = page.nextCursor;
    }
  }

  /**
   * The job's events as Server-Sent Events, live until the job ends; reconnects with
   * Last-Event-ID when the connection drops, so nothing is missed or repeated.
   */
  async *streamEvents(id: string, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    let lastId: string | undefined;
    for (let attempt = 0; ; attempt++) {
      const res = await this.fetch(this.url(`/v1/jobs/${encodeURIComponent(id)}/events`), {
        headers: { ...this.headers, accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) },
        signal,
      });
      if (!res.ok) throw apiError(res.status, await res.json().catch(() => undefined));
      let buffer = '';
      let ended = false;
      try {
        const decoder = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let cut: number;
          while ((cut = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            let data: string | undefined;
            for (const line of block.split('\n')) {
              if (line.startsWith('data:')) data = (data === undefined ? '' : data + '\n') + line.slice(5).trimStart();
              else if (line.startsWith('id:')) lastId = line.slice(3).trim();
            }
            if (data !== undefined) yield JSON.parse(data) as JobEvent;
          }
        }
        ended = true;
      } catch (err) {
        if (signal?.aborted) return;
        if (attempt >= 5) throw err;
      }
      if (ended) return; // the server closes the stream once the job has ended
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /**
   * Uploads a dataset or checkpoint: a folder is archived (.tar.gz) on the fly and streamed, a
   * file is streamed as is; nothing is buffered in memory.
   */
  async upload(kind: 'dataset' | 'checkpoint', name: string, source: string): Promise<DatasetDescription | CheckpointDescription> {
    const stat = await fs.stat(source).catch(() => {
      throw new ApiError(`${source} does not exist.`, null, 'not_found');
    });
    const boundary = `graft-${Math.random().toString(16).slice(2)}${Date.now()}`;
    const filename = stat.isDirectory() ? `${path.basename(path.resolve(source))}.tar.gz` : path.basename(source);
    let content: Readable;
    if (stat.isDirectory()) {
      const tar = new PassThrough();
      createTarGz(source, tar).catch((err: Error) => tar.destroy(err));
      content = tar;
    } else content = createReadStream(source);
    const head = `--${boundary}\r\ncontent-disposition: form-data; name="name"\r\n\r\n${name}\r\n--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${filename.replace(/"/g, '')}"\r\ncontent-type: application/octet-stream\r\n\r\n`;
    async function* body() {
      yield Buffer.from(head);
      for await (const chunk of content) yield chunk as Buffer;
      yield Buffer.from(`\r\n--${boundary}--\r\n`);
    }
    const res = await this.fetch(this.url(kind === 'dataset' ? '/v1/datasets' : '/v1/checkpoints'), {
      method: 'POST',
      headers: { ...this.headers, 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: Readable.from(body()) as unknown as RequestInit['body'],
      duplex: 'half',
    } as RequestInit);
    const json = await res.json().catch(() => undefined);
    if (res.status !== 201) throw apiError(res.status, json);
    return json as DatasetDescription | CheckpointDescription;
  }

  /** Streams a checkpoint's .tar.gz archive to `file`; returns the bytes written. */
  async download(name: string, file: string): Promise<number> {
    const res = await this.fetch(this.url(`/v1/checkpoints/${encodeURIComponent(name)}/archive`), { headers: this.headers });
    if (!res.ok || !res.body) throw apiError(res.status, await res.json().catch(() => undefined));
    const tmp = `${file}.part`;
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(tmp));
    await fs.rename(tmp, file);
    return (await fs.stat(file)).size;
  }
}
