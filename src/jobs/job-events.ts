import { DEFAULT_TENANT } from '../auth/principal';
import type { Redis } from 'ioredis';
import { JobKeys } from './keys';
import { JobScripts } from './scripts';

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

export const EVENT_ID_PATTERN = '^[0-9]+-[0-9]+$';

export class JobEvents {
  private readonly keys: JobKeys;
  private readonly scripts: JobScripts;

  constructor(
    private readonly redis: Redis,
    queueName: string,
  ) {
    this.keys = new JobKeys(queueName);
    this.scripts = new JobScripts(redis);
  }

  key(jobId: string): string {
    return this.keys.events(jobId);
  }

  /**
   * Appends an event (append.lua): only while the job's record exists, and with the record's TTL
   * once it has one, so a journal never outlives its job. Null when the job is gone.
   */
  async append(jobId: string, event: NewEvent): Promise<string | null> {
    const id = await this.scripts.run('append', this.keys.scriptKeys(jobId, '', DEFAULT_TENANT), [event.level ?? 'info', event.type ?? 'message', event.message, JSON.stringify(event.data ?? null)]);
    return typeof id === 'string' ? id : null;
  }

  /** Events after `after` (exclusive), oldest first. */
  async list(jobId: string, opts: { after?: string; limit: number }): Promise<JobEvent[]> {
    const start = opts.after ? `(${opts.after}` : '-';
    const entries = await this.redis.xrange(this.key(jobId), start, '+', 'COUNT', opts.limit);
    return entries.map(([id, fields]) => toEvent(id, fields));
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
