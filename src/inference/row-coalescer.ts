import { rebuildGraftError } from '../untrusted/protocol';
import { classify, rowsOf } from './classify';
import type { InferenceProcess } from './inference-process';
import type { PredictOutput, RowsInput, RowsPart, RowsResult } from './protocol';

interface Waiting {
  input: RowsInput;
  top: number;
  resolve(out: PredictOutput): void;
  reject(err: unknown): void;
}

interface Group {
  child: InferenceProcess;
  dir: string;
  checkpoint: string;
  layer?: string;
  waiting: Waiting[];
}

/**
 * A request's wait in the API before its group leaves for the inference process, in requests: a
 * group is sent when it holds this many, or at the end of the event loop's turn, whichever comes
 * first. Under load one turn reads a whole burst of requests (32 clients: 20–30 of them, each parsed
 * in 150–250 µs); sent only at the turn's end, the burst reached the child as one block after
 * 3–6 ms, the child idled while the API parsed and the API idled while the child computed, in
 * lockstep (the machine 1.45 of 2 cores busy). Sent in chunks, the child computes the first
 * requests while the API parses the rest: 1.7–1.8 cores busy, and 4 and 8 measured alike, 16 less
 * well (bench:predict, 32 clients). Each message costs a structured clone and a pipe write, so
 * not every request alone.
 */
export const ROWS_CHUNK = 8;

/**
 * Packed-row predictions (RowsInput) for the same model and layer that this API process receives
 * in one turn of its event loop (at most ROWS_CHUNK at a time) go to the inference process as one
 * `rows` message: one float32 block, one structured clone, one reply of raw outputs. The API then
 * shapes each request's answer itself (top classes, or raw rows). Under load this is what keeps
 * the per-request cost near the HTTP request's own: the inference process does per-batch work,
 * not per-request work.
 */
export class RowCoalescer {
  /** `inFlight`: the API process's predictions in flight (sent to the inference process as a batching hint). */
  constructor(private readonly inFlight: () => number) {}

  private readonly groups = new Map<string, Group>();
  private flushing: NodeJS.Immediate | null = null;

  predict(child: InferenceProcess, task: { dir: string; checkpoint: string; layer?: string; input: RowsInput; top: number }): Promise<PredictOutput> {
    const key = `${task.dir}\0${task.layer ?? ''}`;
    let group = this.groups.get(key);
    if (!group || group.child !== child) {
      if (group) this.send(group);
      group = { child, dir: task.dir, checkpoint: task.checkpoint, layer: task.layer, waiting: [] };
      this.groups.set(key, group);
    }
    const g = group;
    const reply = new Promise<PredictOutput>((resolve, reject) => g.waiting.push({ input: task.input, top: task.top, resolve, reject }));
    if (g.waiting.length >= ROWS_CHUNK) {
      this.groups.delete(key);
      this.send(g);
    } else {
      this.flushing ??= setImmediate(() => this.flush());
    }
    return reply;
  }

  private flush(): void {
    this.flushing = null;
    const groups = [...this.groups.values()];
    this.groups.clear();
    for (const group of groups) this.send(group);
  }

  private send(group: Group): void {
    const { waiting } = group;
    const parts: RowsPart[] = [];
    let offset = 0;
    for (const { input } of waiting) {
      parts.push({ offset, length: input.x.length, count: input.count, dims: input.dims, maxCount: input.maxCount });
      offset += input.x.length;
    }
    // A lone request's own array goes as it is when it owns its whole buffer (the structured
    // clone copies a view's entire buffer): one allocation and copy fewer per request.
    const lone = waiting.length === 1 ? waiting[0].input.x : null;
    const x = lone && lone.byteOffset === 0 && lone.byteLength === lone.buffer.byteLength ? lone : new Float32Array(offset);
    if (x !== lone) waiting.forEach(({ input }, i) => x.set(input.x, parts[i].offset));
    group.child.call<RowsResult>({ op: 'rows', task: { dir: group.dir, checkpoint: group.checkpoint, layer: group.layer, x, parts, othersInFlight: Math.max(0, this.inFlight() - parts.length) } }, { now: true }).then(
      (result) => answer(group.checkpoint, waiting, result),
      (err: unknown) => {
        for (const w of waiting) w.reject(err);
      },
    );
  }
}

/** Each request's response from the batch's raw outputs, in part order. */
function answer(checkpoint: string, waiting: Waiting[], result: RowsResult): void {
  let row = 0;
  waiting.forEach((w, i) => {
    const part = result.parts[i];
    if (!part.ok) return w.reject(rebuildGraftError(part.error));
    const data = result.output.subarray(row * result.rowSize, (row + part.count) * result.rowSize);
    row += part.count;
    w.resolve(
      result.labels
        ? { checkpoint, predictions: classify(data, result.rowSize, part.count, result.labels, w.top) }
        : { checkpoint, outputs: rowsOf(data, result.rowSize, part.count), shape: result.shape },
    );
  });
}
