import path from 'node:path';
import type { Logger } from 'pino';
import { GraftError, UnavailableError } from '../errors';
import { InferenceProcess } from './inference-process';
import type { InferenceSettings, InferenceStats, PredictOutput, PredictTask } from './protocol';
import { RowCoalescer } from './row-coalescer';

export interface InferenceClientOptions {
  /** INFERENCE_PROCESSES. */
  processes: number;
  /** INFERENCE_MAX_CONCURRENT: requests in flight beyond it get 429. */
  maxConcurrent: number;
  /** INFERENCE_TIMEOUT_MS. */
  timeoutMs: number;
  settings: InferenceSettings;
  logger: Logger;
  /** The compiled child entry; by default dist/workers/inference/main.js. */
  filename?: string;
}

const RETRY_AFTER_SECONDS = 1;

/** dist/workers/inference/main.js, whether this file runs compiled (dist/src/inference) or from source under jest. */
function defaultChildFile(): string {
  const fromSource = __filename.endsWith('.ts');
  return fromSource ? path.resolve(__dirname, '..', '..', 'dist', 'workers', 'inference', 'main.js') : path.resolve(__dirname, '..', '..', 'workers', 'inference', 'main.js');
}

/** FNV-1a: a stable spread of checkpoint folders over the children. */
function slotOf(key: string, slots: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % slots;
}

/**
 * The API's side of prediction. Requests go to INFERENCE_PROCESSES child processes
 * (workers/inference/main.ts, loaded by file name: the API's module tree never imports
 * TensorFlow.js), each checkpoint always to the same child so each model is loaded once and its
 * requests can be batched together. Children start on the first prediction; one that dies is
 * replaced on the next request. In-flight requests are bounded (429 with Retry-After).
 */
export class InferenceClient {
  private readonly children: (InferenceProcess | null)[];
  private readonly rows = new RowCoalescer(() => this.inFlight);
  private inFlight = 0;
  private closing: Promise<void> | null = null;

  constructor(private readonly opts: InferenceClientOptions) {
    this.children = Array.from({ length: opts.processes }, () => null);
  }

  /** Requests being answered now (for /metrics). */
  get busy(): number {
    return this.inFlight;
  }

  /** Children running now. */
  get started(): number {
    return this.children.filter((c) => c && !c.dead).length;
  }

  async predict(task: PredictTask): Promise<PredictOutput> {
    if (this.closing) throw new UnavailableError('shutting_down', 'The API is shutting down; retry on another instance.', RETRY_AFTER_SECONDS);
    if (this.inFlight >= this.opts.maxConcurrent) {
      throw new GraftError('too_many_predictions', `Too many predictions are running in this API process (INFERENCE_MAX_CONCURRENT = ${this.opts.maxConcurrent}); retry in a moment.`, {
        statusCode: 429,
        retryAfterSeconds: RETRY_AFTER_SECONDS,
        details: { limit: 'INFERENCE_MAX_CONCURRENT', max: this.opts.maxConcurrent },
      });
    }
    this.inFlight++;
    try {
      const child = this.childFor(task.dir);
      if (task.input.kind === 'rows') return await this.rows.predict(child, { ...task, input: task.input });
      return await child.call<PredictOutput>({ op: 'predict', task });
    } finally {
      this.inFlight--;
    }
  }

  /** Drops checkpoint folder `dir` from every running child's cache (it was deleted). */
  async evict(dir: string): Promise<void> {
    const live = this.children.filter((c): c is InferenceProcess => c !== null && !c.dead);
    await Promise.allSettled(live.map((c) => c.call({ op: 'evict', dir })));
  }

  /** Each running child's counters (batch sizes, cache); children not started are not listed. */
  async stats(): Promise<InferenceStats[]> {
    const live = this.children.filter((c): c is InferenceProcess => c !== null && !c.dead);
    return Promise.all(live.map((c) => c.call<InferenceStats>({ op: 'stats' })));
  }

  /** Idempotent: stops every child. */
  close(): Promise<void> {
    this.closing ??= Promise.all(this.children.map((c) => c?.close())).then(() => undefined);
    return this.closing;
  }

  private childFor(dir: string): InferenceProcess {
    const slot = slotOf(dir, this.children.length);
    let child = this.children[slot];
    if (!child || child.dead) {
      const fresh: InferenceProcess = new InferenceProcess(this.opts.filename ?? defaultChildFile(), this.opts.settings, {
        timeoutMs: this.opts.timeoutMs,
        logger: this.opts.logger,
        onExit: () => {
          if (this.children[slot] === fresh) this.children[slot] = null;
        },
      });
      child = fresh;
      this.children[slot] = child;
      this.opts.logger.info({ pid: child.pid, slot }, 'inference process started');
    }
    return child;
  }
}
