import * as tf from '@tensorflow/tfjs';

/** The rows of one request's output: `count` rows of `rowSize` floats. */
export interface BatchOutput {
  data: Float32Array;
  rowSize: number;
  /** One row's shape (the output without the batch dimension). */
  shape: number[];
}

interface Pending {
  x: Float32Array;
  count: number;
  resolve(out: BatchOutput): void;
  reject(err: unknown): void;
}

interface Queue {
  predictor: tf.LayersModel;
  inputShape: number[];
  pending: Pending[];
  queued: number;
  timer: NodeJS.Timeout | null;
  immediate: NodeJS.Immediate | null;
}

export interface BatchStats {
  batches: number;
  instances: number;
  batchSizes: Record<string, number>;
}

/**
 * Dynamic micro-batching. Requests for the same model (and layer) that arrive within
 * `windowMs` of the first one (when other requests are in flight) run through one
 * `model.predict` of up to `maxBatch` instances:
 * under concurrency the per-call overhead (kernel dispatch, IPC wake-ups) is paid once per batch
 * instead of once per image, so throughput approaches a bare batched predict. A full batch runs
 * at once, and requests that arrived while a batch ran go next without waiting another window
 * (they already waited), one batch per turn of the event loop. One process, one event loop: batches of different models never overlap.
 */
export class MicroBatcher {
  private readonly queues = new Map<string, Queue>();
  readonly stats: BatchStats = { batches: 0, instances: 0, batchSizes: {} };

  /**
   * `othersInFlight`: requests this process holds besides the one arriving (decoding, loading,
   * queued). The window is only worth waiting when there are some: a lone request (one client)
   * runs on the next turn of the event loop instead of paying the window for nothing, and
   * requests that arrived together (in one read of the IPC channel) still batch.
   */
  constructor(private readonly opts: { windowMs: number; maxBatch: number; othersInFlight?: () => number }) {}

  /**
   * Predicts `count` instances (`x` = count × inputShape floats) with `predictor`, batched with
   * other callers of `queueKey`. `othersElsewhere`: requests the caller knows are coming that this
   * process does not hold yet (the API's in-flight count), which make the window worth waiting.
   */
  predict(queueKey: string, predictor: tf.LayersModel, inputShape: number[], x: Float32Array, count: number, othersElsewhere = 0): Promise<BatchOutput> {
    let queue = this.queues.get(queueKey);
    if (!queue || queue.predictor !== predictor) {
      if (queue) this.flush(queueKey, queue); // a model re-loaded under the same key: finish the old queue first
      queue = { predictor, inputShape, pending: [], queued: 0, timer: null, immediate: null };
      this.queues.set(queueKey, queue);
    }
    const q = queue;
    return new Promise<BatchOutput>((resolve, reject) => {
      q.pending.push({ x, count, resolve, reject });
      q.queued += count;
      if (q.queued >= this.opts.maxBatch) {
        this.flush(queueKey, q);
      } else if (!q.timer && !q.immediate) {
        if (this.opts.windowMs > 0 && Math.max(othersElsewhere, this.opts.othersInFlight?.() ?? 1) > 0) q.timer = setTimeout(() => this.flush(queueKey, q), this.opts.windowMs);
        else q.immediate = setImmediate(() => this.flush(queueKey, q));
      }
    });
  }

  private flush(queueKey: string, q: Queue): void {
    if (q.timer) clearTimeout(q.timer);
    if (q.immediate) clearImmediate(q.immediate);
    q.timer = null;
    q.immediate = null;
    // Whole requests up to maxBatch instances (at least one request, however large).
    const batch: Pending[] = [];
    let size = 0;
    while (q.pending.length > 0 && (batch.length === 0 || size + q.pending[0].count <= this.opts.maxBatch)) {
      const next = q.pending.shift()!;
      batch.push(next);
      size += next.count;
    }
    q.queued -= size;
    if (batch.length > 0) this.runBatch(q, batch, size);
    if (q.pending.length === 0) {
      if (this.queues.get(queueKey) === q) this.queues.delete(queueKey);
      return;
    }
    // One batch per turn of the event loop: this batch's answers (settled in microtasks, sent by
    // the host in its own setImmediate) leave before the next batch computes, so the API writes
    // responses while this process computes instead of both waiting on each other; and requests
    // that arrive meanwhile join the rest, which has already waited. Hence two hops.
    q.immediate = setImmediate(() => {
      q.immediate = setImmediate(() => this.flush(queueKey, q));
    });
  }

  private runBatch(q: Queue, batch: Pending[], size: number): void {
    try {
      const sampleSize = q.inputShape.reduce((a, b) => a * b, 1);
      const x = batch.length === 1 ? batch[0].x : concat(batch, size * sampleSize);
      const out = this.predictRows(q, x, size);
      this.stats.batches += Math.ceil(size / this.opts.maxBatch);
      this.stats.instances += size;
      let row = 0;
      for (const p of batch) {
        p.resolve({ data: out.data.slice(row * out.rowSize, (row + p.count) * out.rowSize), rowSize: out.rowSize, shape: out.shape });
        row += p.count;
      }
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }

  /** model.predict over `size` rows, in chunks of maxBatch (one request may be larger than a batch). */
  private predictRows(q: Queue, x: Float32Array, size: number): BatchOutput {
    const sampleSize = q.inputShape.reduce((a, b) => a * b, 1);
    const shape = (q.predictor.outputs[0].shape.slice(1) as number[]).map((d) => d ?? 1);
    const rowSize = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size * rowSize);
    for (let start = 0; start < size; start += this.opts.maxBatch) {
      const n = Math.min(this.opts.maxBatch, size - start);
      this.stats.batchSizes[n] = (this.stats.batchSizes[n] ?? 0) + 1;
      // tidy returns the tensor, read after it: tidy walks whatever its function returns looking
      // for tensors to keep, and a returned Float32Array is walked element by element (with a
      // deoptimisation per number: a fifth of this process's CPU went to recompiling the walker).
      const output = tf.tidy(() => {
        const input = tf.tensor(x.subarray(start * sampleSize, (start + n) * sampleSize), [n, ...q.inputShape]);
        const out = q.predictor.predict(input);
        return Array.isArray(out) ? out[0] : out;
      });
      try {
        data.set(output.dataSync() as Float32Array, start * rowSize);
      } finally {
        output.dispose();
      }
    }
    return { data, rowSize, shape };
  }
}

function concat(batch: Pending[], length: number): Float32Array {
  const x = new Float32Array(length);
  let offset = 0;
  for (const p of batch) {
    x.set(p.x, offset);
    offset += p.x.length;
  }
  return x;
}
