import { fork, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { GraftError, UnavailableError } from '../errors';
import { rebuildGraftError } from '../untrusted/protocol';
import type { FromChild, InferenceSettings, ToChild } from './protocol';

type Request = ToChild extends infer T ? (T extends { id: number } ? Omit<T, 'id'> : never) : never;

interface Waiting {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const RETRY_AFTER_SECONDS = 1;
/** How long a child may take to exit after its channel closes before it is killed. */
const EXIT_GRACE_MS = 5000;

/**
 * One inference child process and the requests waiting on it. A child that exits (crash, OOM
 * kill) fails the requests it held with 503 and reports itself dead; the client forks a new one
 * for the next request. A request past its time limit kills the child (a stuck kernel cannot be
 * interrupted otherwise) and fails with 503.
 */
export class InferenceProcess {
  private readonly child: ChildProcess;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  /** Requests of this turn of the event loop, sent together in the next check phase. */
  private outbox: ToChild[] = [];
  private flushing: NodeJS.Immediate | null = null;
  private exited: Promise<void>;
  dead = false;

  constructor(
    file: string,
    settings: InferenceSettings,
    private readonly opts: { timeoutMs: number; logger: Logger; onExit(): void },
  ) {
    // 'advanced' serialization: typed arrays and buffers cross as bytes (structured clone).
    this.child = fork(file, [JSON.stringify(settings)], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (msgs: FromChild[]) => {
      for (const msg of msgs) this.settle(msg);
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.dead = true;
        this.child.removeAllListeners('message');
        this.child.removeAllListeners('error');
        if (this.waiting.size > 0 || code !== 0) opts.logger.warn({ pid: this.child.pid, code, signal, pending: this.waiting.size }, 'inference process exited');
        this.failAll(new UnavailableError('inference_unavailable', 'The inference process serving this checkpoint stopped; retry in a moment.', RETRY_AFTER_SECONDS));
        opts.onExit();
        resolve();
      });
    });
    // A failed fork or a send to a dead channel: 'exit' follows and fails the requests.
    this.child.on('error', (err) => opts.logger.error({ err }, 'inference process error'));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * One request to the child, sent with the others of this turn of the event loop; `now` sends
   * at once (a caller that has already gathered a turn's work, see RowCoalescer).
   */
  call<T>(request: Request, { timeoutMs = this.opts.timeoutMs, now = false }: { timeoutMs?: number; now?: boolean } = {}): Promise<T> {
    if (this.dead) return Promise.reject(new UnavailableError('inference_unavailable', 'The inference process is restarting; retry in a moment.', RETRY_AFTER_SECONDS));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new UnavailableError('inference_timeout', `The prediction took longer than ${timeoutMs} ms (INFERENCE_TIMEOUT_MS); its inference process is restarted. Retry with fewer instances.`, RETRY_AFTER_SECONDS));
        this.opts.logger.error({ pid: this.child.pid, timeoutMs }, 'inference request timed out; killing its process');
        this.child.kill('SIGKILL');
      }, timeoutMs);
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.outbox.push({ ...request, id } as ToChild);
      if (now) {
        if (this.flushing) clearImmediate(this.flushing);
        this.flush();
      } else {
        this.flushing ??= setImmediate(() => this.flush());
      }
    });
  }

  /** Sends this turn's requests as one message (see protocol.ts). */
  private flush(): void {
    const batch = this.outbox;
    this.outbox = [];
    this.flushing = null;
    const failed = () => {
      for (const { id } of batch) this.settle({ id, ok: false, error: { code: 'inference_unavailable', message: 'The inference process is restarting; retry in a moment.', param: null, statusCode: 503 } });
    };
    if (this.dead || !this.child.connected) return failed();
    this.child.send(batch, (err) => {
      if (err) failed();
    });
  }

  /** Idempotent: closes the channel (the child exits on disconnect), kills it if it lingers. */
  async close(): Promise<void> {
    if (this.flushing) {
      clearImmediate(this.flushing);
      this.flush();
    }
    if (!this.dead) {
      if (this.child.connected) this.child.disconnect();
      const kill = setTimeout(() => this.child.kill('SIGKILL'), EXIT_GRACE_MS);
      await this.exited;
      clearTimeout(kill);
    }
  }

  private settle(msg: FromChild): void {
    const w = this.waiting.get(msg.id);
    if (!w) return; // timed out already
    this.waiting.delete(msg.id);
    clearTimeout(w.timer);
    if (msg.ok) w.resolve(msg.value);
    else w.reject(withRetryAfter(rebuildGraftError(msg.error)));
  }

  private failAll(err: GraftError): void {
    for (const [id, w] of this.waiting) {
      clearTimeout(w.timer);
      this.waiting.delete(id);
      w.reject(err);
    }
  }
}

function withRetryAfter(err: GraftError): GraftError {
  return err.statusCode === 503 ? new GraftError(err.code, err.message, { param: err.param, statusCode: 503, details: err.details, retryAfterSeconds: RETRY_AFTER_SECONDS }) : err;
}
