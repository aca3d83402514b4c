import path from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/**
 * Deleting a checkpoint evicts its model everywhere: the deleting API process publishes the
 * folder (relative to DATA_DIR) on a Redis channel and every API process that runs inference
 * children forwards it to them. The cache is keyed by content hash, so a missed message only
 * costs memory until the LRU drops the model, never a stale answer.
 */
export class EvictionBus {
  private subscriber: Redis | null = null;
  private closed = false;

  constructor(
    private readonly opts: { publisher: Redis; connect: () => Redis; channel: string; dataDir: string; onEvict(dir: string): Promise<void>; logger: Logger },
  ) {}

  /** Subscribes (once): called when this process starts serving predictions. */
  start(): void {
    if (this.subscriber || this.closed) return;
    const sub = this.opts.connect();
    this.subscriber = sub;
    sub.on('message', (_channel: string, relative: string) => {
      this.opts.onEvict(path.resolve(this.opts.dataDir, relative)).catch((err: unknown) => this.opts.logger.warn({ err }, 'could not evict a deleted checkpoint'));
    });
    sub.subscribe(this.opts.channel).catch((err: unknown) => this.opts.logger.error({ err }, 'could not subscribe to checkpoint deletions'));
  }

  async publish(dir: string): Promise<void> {
    await this.opts.publisher.publish(this.opts.channel, path.relative(path.resolve(this.opts.dataDir), dir));
  }

  /** Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const sub = this.subscriber;
    this.subscriber = null;
    if (sub) await sub.quit().catch(() => sub.disconnect());
  }
}
