import type { Redis } from 'ioredis';

/**
 * A job's journal: an ordered, append-only list of what happened (status changes, per-epoch
 * metrics, warnings, resume notices, errors), kept in a Redis stream per job so the API, any
 * worker and any SSE client see one order. Stream ids ("<ms>-<seq>") are the event ids, so a
 * cursor or a Last-Event-ID resumes exactly after the last event seen.
 */
export type EventLevel = 'info' | 'warning' | 'error';
export type EventType = 'message' | 'metrics';

export interface JobEvent {
  id: string;
  at: string;
  level: EventLevel;
  type: EventType;
  message: string;
  data: Record<string, unknown> | null;
}

export interface NewEvent {
  level?: EventLevel;
  type?: EventType;
  message: string;
  data?: Record<string, unknown> | null;
}

/** Events kept per job; old ones are trimmed first (a job has one metrics event per epoch). */
const MAX_EVENTS = 10_000;
export const EVENT_ID_PATTERN = '^[0-9]+-[0-9]+$';

export class JobEvents {
  private readonly prefix: string;

  constructor(
    private readonly redis: Redis,
    queueName: string,
  ) {
    this.prefix = `graft:${queueName}:events`;
  }

  key(jobId: string): string {
    return `${this.prefix}:${jobId}`;
  }

  async append(jobId: string, event: NewEvent): Promise<string> {
    const id = await this.redis.xadd(
      this.key(jobId),
      'MAXLEN',
      '~',
      String(MAX_EVENTS),
      '*',
      'level', event.level ?? 'info',
      'type', event.type ?? 'message',
      'message', event.message,
      'data', JSON.stringify(event.data ?? null),
    );
    return id!;
  }

  /** Events after `after` (exclusive), oldest first. */
  async list(jobId: string, opts: { after?: string; limit: number }): Promise<JobEvent[]> {
    const start = opts.after ? `(${opts.after}` : '-';
    const entries = await this.redis.xrange(this.key(jobId), start, '+', 'COUNT', opts.limit);
    return entries.map(([id, fields]) => toEvent(id, fields));
  }

  /**
   * Waits up to `blockMs` for events after `after` on a connection of its own (a blocking read
   * holds the connection), oldest first; [] on timeout.
   */
  static async waitFor(conn: Redis, key: string, after: string, blockMs: number, limit = 100): Promise<JobEvent[]> {
    const res = (await conn.xread('COUNT', limit, 'BLOCK', blockMs, 'STREAMS', key, after)) as [string, [string, string[]][]][] | null;
    return res ? res[0][1].map(([id, fields]) => toEvent(id, fields)) : [];
  }

  async expire(jobId: string, seconds: number): Promise<void> {
    await this.redis.expire(this.key(jobId), seconds);
  }
}

/** A stream entry as a JobEvent (also used by the API's event hub). */
export function toEvent(id: string, fields: string[]): JobEvent {
  const f: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) f[fields[i]] = fields[i + 1];
  return {
    id,
    at: new Date(Number(id.split('-')[0])).toISOString(),
    level: (f.level ?? 'info') as EventLevel,
    type: (f.type ?? 'message') as EventType,
    message: f.message ?? '',
    data: f.data ? (JSON.parse(f.data) as Record<string, unknown> | null) : null,
  };
}
