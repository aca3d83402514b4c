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

/**
 * The id of a job's first event, "Job queued.", which is not stored: create.lua used to write it,
 * but the first entry of a Redis stream allocates a 4 KB node (4.7 KB per queued job in all) and
 * costs Redis more than the rest of the submission's record. It is made from the record instead,
 * with the lowest id a stream can hold, so every stored event sorts after it and a cursor or
 * Last-Event-ID of "0-1" resumes with the first stored one.
 */
export const QUEUED_EVENT_ID = '0-1';

/** The first event of every job, from its record. */
export function queuedEvent(createdAt: string): JobEvent {
  return { id: QUEUED_EVENT_ID, at: createdAt, level: 'info', type: 'message', message: 'Job queued.', data: { status: 'queued' } };
}

/** Journals written before QUEUED_EVENT_ID start with a stored copy of that event (data without `previous`, unlike a requeue). */
function isStoredQueuedEvent(event: JobEvent | undefined): boolean {
  return event?.message === 'Job queued.' && event.data !== null && event.data.status === 'queued' && !('previous' in event.data);
}

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

  /**
   * Events after `after` (exclusive), oldest first. `createdAt` is the job record's: from the start
   * of the journal, its "Job queued." event comes first (QUEUED_EVENT_ID).
   */
  async list(jobId: string, opts: { after?: string; limit: number }, createdAt: string): Promise<JobEvent[]> {
    const fromStart = opts.after === undefined || opts.after === '0-0';
    const start = fromStart ? '-' : `(${opts.after}`;
    const entries = await this.redis.xrange(this.key(jobId), start, '+', 'COUNT', opts.limit);
    const events = entries.map(([id, fields]) => toEvent(id, fields));
    if (fromStart && !isStoredQueuedEvent(events[0])) {
      events.unshift(queuedEvent(createdAt));
      if (events.length > opts.limit) events.pop();
    }
    return events;
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
