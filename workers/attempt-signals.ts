import type { JobStore } from '../src/jobs/job-store';
import { LOCK_LOST_REASON, SHUTDOWN_REASON } from './shutdown';

/** How often a running attempt asks Redis whether it still owns its job and whether it was cancelled. */
const POLL_MS = 1000;

/**
 * Why a running attempt must stop, from every source: BullMQ's abort signal (a user's cancel
 * relayed by the worker, the worker shutting down, or the worker failing to renew the lock) and
 * a poll of Redis (poll.lua), which still works when the worker process itself is paused.
 *   stop      → the trainer stops at the next batch and writes nothing (cancel, or lost job)
 *   interrupt → the trainer checkpoints at the next batch and the job is handed back
 */
export class AttemptSignals {
  readonly stop = new AbortController();
  readonly interrupt = new AbortController();
  /** Another attempt owns the job: this one writes and records nothing more. */
  lost = false;
  cancelled = false;
  private lastPoll = 0;

  constructor(
    private readonly store: JobStore,
    private readonly jobId: string,
    private readonly token: string,
    bullSignal?: AbortSignal,
  ) {
    bullSignal?.addEventListener('abort', () => this.onAbort(bullSignal.reason), { once: true });
  }

  private onAbort(reason: unknown): void {
    if (reason === SHUTDOWN_REASON) this.interrupt.abort();
    else if (reason === LOCK_LOST_REASON) this.markLost();
    else this.markCancelled();
  }

  markLost(): void {
    this.lost = true;
    this.stop.abort();
  }

  private markCancelled(): void {
    this.cancelled = true;
    this.stop.abort();
  }

  /** Asks Redis (at most once a second unless `force`); the answer also sets the signals. */
  async poll(force = false): Promise<void> {
    if (!force && Date.now() - this.lastPoll < POLL_MS) return;
    this.lastPoll = Date.now();
    const answer = await this.store.poll(this.jobId, this.token);
    if (answer === 'lost') this.markLost();
    else if (answer === 'cancelled') this.markCancelled();
  }
}
