import createClient, { type Client } from 'openapi-fetch';
import type { paths } from '../../src/client/api-types';

/**
 * The dashboard's API client, typed from the committed OpenAPI document (the same generated types
 * as the CLI), so a route change that breaks a page fails the build. The API key, if any, lives
 * in sessionStorage: entered once, kept for this tab only.
 */
export type Job = paths['/v1/jobs/{id}']['get']['responses'][200]['content']['application/json'];
export type JobSpec = paths['/v1/jobs']['post']['requestBody']['content']['application/json'];
export type JobStatus = NonNullable<NonNullable<paths['/v1/jobs']['get']['parameters']['query']>['status']>;
export type PlanResponse = paths['/v1/plans']['post']['responses'][200]['content']['application/json'];
export type JobEvent = paths['/v1/jobs/{id}/events']['get']['responses'][200]['content']['application/json']['data'][number];
export type CheckpointSummary = paths['/v1/checkpoints']['get']['responses'][200]['content']['application/json']['data'][number];
export type CheckpointDescription = paths['/v1/checkpoints/{name}']['get']['responses'][200]['content']['application/json'];
export type DatasetSummary = paths['/v1/datasets']['get']['responses'][200]['content']['application/json']['data'][number];
export type DatasetDescription = paths['/v1/datasets/{name}']['get']['responses'][200]['content']['application/json'];

const KEY_STORAGE = 'graft-key';

export function apiKey(): string {
  return sessionStorage.getItem(KEY_STORAGE) ?? '';
}

export function setApiKey(key: string): void {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

function authHeaders(): Record<string, string> {
  const key = apiKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

export const client: Client<paths> = createClient<paths>({ baseUrl: location.origin });
client.use({
  onRequest({ request }) {
    for (const [k, v] of Object.entries(authHeaders())) request.headers.set(k, v);
    return request;
  },
  // A 401 (no key, or a revoked one) points at the key field until a request gets through.
  onResponse({ response }) {
    markKeyField(response.status === 401);
    return response;
  },
});

function markKeyField(needsKey: boolean): void {
  const field = document.getElementById('key');
  if (!field) return;
  if (needsKey) field.setAttribute('data-needs-key', 'true');
  else field.removeAttribute('data-needs-key');
}

/** The data of an openapi-fetch result, or an ApiError carrying the API's own message. */
export function unwrap<T>(r: { data?: T; error?: unknown; response: Response }): T {
  if (r.error !== undefined || r.data === undefined) {
    const e = (r.error as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(e?.message ?? `The API answered ${r.response.status}.`, r.response.status, e?.code ?? 'http_error');
  }
  return r.data;
}

/**
 * A job's events over Server-Sent Events, read with fetch (EventSource cannot send an
 * Authorization header). Reconnects with Last-Event-ID; ends when the server ends the stream
 * (the job has finished) or `signal` aborts.
 */
export async function followEvents(id: string, onEvent: (e: JobEvent) => void, signal: AbortSignal): Promise<void> {
  let lastId = '';
  for (let attempt = 0; attempt < 20 && !signal.aborted; attempt++) {
    try {
      const res = await fetch(`/v1/jobs/${encodeURIComponent(id)}/events`, {
        headers: { ...authHeaders(), accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) },
        signal,
      });
      if (!res.ok || !res.body) throw new ApiError(`events: ${res.status}`, res.status, 'http_error');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let data: string | undefined;
          for (const line of block.split('\n')) {
            if (line.startsWith('data:')) data = (data ?? '') + line.slice(5).trimStart();
            else if (line.startsWith('id:')) lastId = line.slice(3).trim();
          }
          if (data !== undefined) onEvent(JSON.parse(data) as JobEvent);
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw err;
      await new Promise((r) => setTimeout(r, 1500));
    }
  }
}
