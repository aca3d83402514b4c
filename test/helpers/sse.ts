import http from 'node:http';

export interface SseEvent {
  id: string;
  event: string;
  data: { id: string; type: string; message: string; data: Record<string, unknown> | null };
}

/**
 * Reads a Server-Sent Events stream until it ends or `stopAfter` events arrived (then the
 * connection is dropped, as a client that goes away would).
 */
export function readSse(url: string, opts: { lastEventId?: string; stopAfter?: number; timeoutMs?: number } = {}): Promise<{ events: SseEvent[]; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (opts.lastEventId) headers['last-event-id'] = opts.lastEventId;
    const req = http.get(url, { headers }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`SSE ${url} answered ${res.statusCode}`));
        return;
      }
      let buffer = '';
      const timer = setTimeout(() => {
        req.destroy();
        reject(new Error(`SSE ${url} timed out after ${events.length} events`));
      }, opts.timeoutMs ?? 120_000);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const fields: Record<string, string> = {};
          for (const line of block.split('\n')) {
            if (!line || line.startsWith(':')) continue;
            const at = line.indexOf(':');
            fields[line.slice(0, at)] = line.slice(at + 1).trimStart();
          }
          if (fields.data === undefined) continue;
          events.push({ id: fields.id, event: fields.event, data: JSON.parse(fields.data) });
          if (opts.stopAfter !== undefined && events.length >= opts.stopAfter) {
            clearTimeout(timer);
            req.destroy();
            resolve({ events, ended: false });
            return;
          }
        }
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ events, ended: true });
      });
    });
    req.on('error', (err) => {
      if (opts.stopAfter !== undefined && events.length >= opts.stopAfter) return;
      reject(err);
    });
  });
}
