import type { Redis } from 'ioredis';
import type { BaseLogger } from 'pino';
import { toEvent, type JobEvent } from '../jobs/job-events';

/** One open stream's view of the hub: events after its cursor, in order, each once. */
export interface EventSubscriber {
  onEvents(events: JobEvent[]): void;
}

export interface EventSubscription {
  /** Idempotent: stops delivery and forgets the subscriber. */
  close(): void;
}

export interface EventHubOptions {
  /** Opens the hub's own connection (a blocking read holds it); called once, on first use. */
  connect(): Redis;
  /** A connection for short commands (CLIENT UNBLOCK): never the hub's own. */
  control: Redis;
  logger: BaseLogger;
  /** How long one blocking read waits before it is re-armed anyway. */
  blockMs?: number;
  /** Events read per stream per round. */
  batch?: number;
}

interface Watched {
  subscribers: Map<EventSubscriber, { cursor: string }>;
}

const RETRY_AFTER_ERROR_MS = 1000;

/**
 * One Redis reader per API process for every job-event stream (Server-Sent Events): a single
 * blocking XREAD over all streams someone watches, re-armed (CLIENT UNBLOCK) when the set
 * changes, its events handed to each subscriber after that subscriber's own cursor. So a
 * thousand open streams cost one connection, not a thousand.
 *
 * No gaps, no duplicates: a stream is read from the oldest cursor of its subscribers, and each
 * subscriber gets only the events after its own cursor, which then moves to the last event it got.
 */
export class EventHub {
  private readonly streams = new Map<string, Watched>();
  private readonly blockMs: number;
  private readonly batch: number;
  private conn: Redis | null = null;
  private clientId: number | null = null;
  private loop: Promise<void> | null = null;
  private closed = false;
  /** The set or a cursor changed since the in-flight read was armed. */
  private dirty = false;
  private reading = false;
  private wake: (() => void) | null = null;

  constructor(private readonly opts: EventHubOptions) {
    this.blockMs = opts.blockMs ?? 10_000;
    this.batch = opts.batch ?? 100;
  }

  /** Open subscriptions (the SSE_MAX_STREAMS cap counts these). */
  get subscriberCount(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.subscribers.size;
    return n;
  }

  /** Streams the current read watches. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Delivers the events of stream `key` after `after` (exclusive) to `subscriber`, live. */
  subscribe(key: string, after: string, subscriber: EventSubscriber): EventSubscription {
    if (this.closed) throw new Error('the event hub is closed');
    let watched = this.streams.get(key);
    if (!watched) {
      watched = { subscribers: new Map() };
      this.streams.set(key, watched);
    }
    watched.subscribers.set(subscriber, { cursor: after });
    this.rearm();
    this.loop ??= this.run();
    let open = true;
    return {
      close: () => {
        if (!open) return;
        open = false;
        const w = this.streams.get(key);
        if (!w) return;
        w.subscribers.delete(subscriber);
        if (w.subscribers.size === 0) {
          this.streams.delete(key);
          this.rearm();
        }
      },
    };
  }

  /** Stops the reader and closes its connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.streams.clear();
    this.rearm();
    this.conn?.disconnect();
    await this.loop?.catch(() => undefined);
  }

  private async run(): Promise<void> {
    this.conn = this.opts.connect();
    // A reconnected client has a new id: fetch it again before the next read.
    this.conn.on('ready', () => {
      this.clientId = null;
    });
    while (!this.closed) {
      if (this.streams.size === 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          if (this.streams.size > 0 || this.closed) resolve();
        });
        this.wake = null;
        continue;
      }
      try {
        await this.readOnce(this.conn);
      } catch (err) {
        if (this.closed) break;
        this.opts.logger.warn({ err }, 'event hub: read failed; retrying');
        await new Promise((r) => setTimeout(r, RETRY_AFTER_ERROR_MS));
      }
    }
  }

  private async readOnce(conn: Redis): Promise<void> {
    this.clientId ??= Number(await conn.client('ID'));
    const keys = [...this.streams.keys()];
    const from = keys.map((k) => oldestCursor(this.streams.get(k)!));
    this.dirty = false;
    this.reading = true;
    let res: [string, [string, string[]][]][] | null;
    try {
      res = (await conn.xread('COUNT', this.batch, 'BLOCK', this.blockMs, 'STREAMS', ...keys, ...from)) as typeof res;
    } finally {
      this.reading = false;
    }
    for (const [key, entries] of res ?? []) {
      const watched = this.streams.get(key);
      if (!watched || entries.length === 0) continue;
      const events = entries.map(([id, fields]) => toEvent(id, fields));
      for (const [subscriber, state] of [...watched.subscribers]) {
        if (!watched.subscribers.has(subscriber)) continue; // closed by an earlier callback
        const fresh = events.filter((e) => compareIds(e.id, state.cursor) > 0);
        if (fresh.length === 0) continue;
        state.cursor = fresh[fresh.length - 1].id;
        try {
          subscriber.onEvents(fresh);
        } catch (err) {
          this.opts.logger.warn({ err }, 'event hub: a subscriber failed');
        }
      }
    }
  }

  /**
   * The watched set changed: wake an idle loop, or interrupt the blocking read so the next one
   * covers the new set. CLIENT UNBLOCK can arrive before the read does; then try again shortly
   * (until the read is re-armed or returns).
   */
  private rearm(): void {
    this.dirty = true;
    this.wake?.();
    if (!this.reading) return;
    void (async () => {
      for (let attempt = 0; attempt < 50 && this.reading && this.dirty; attempt++) {
        const id = this.clientId;
        if (id === null) return;
        const unblocked = await this.opts.control.client('UNBLOCK', id).catch(() => 0);
        if (Number(unblocked) === 1) return;
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
  }
}

function oldestCursor(watched: Watched): string {
  let oldest: string | null = null;
  for (const { cursor } of watched.subscribers.values()) if (oldest === null || compareIds(cursor, oldest) < 0) oldest = cursor;
  return oldest ?? '0-0';
}

/** Orders Redis stream ids ("<ms>-<seq>"). */
export function compareIds(a: string, b: string): number {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  const byMs = BigInt(am) - BigInt(bm);
  if (byMs !== 0n) return byMs > 0n ? 1 : -1;
  const bySeq = BigInt(as) - BigInt(bs);
  return bySeq === 0n ? 0 : bySeq > 0n ? 1 : -1;
}
