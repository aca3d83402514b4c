import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { InferenceProcess } from '../../src/inference/inference-process';
import type { InferenceSettings, PredictOutput } from '../../src/inference/protocol';
import { ROWS_CHUNK, RowCoalescer } from '../../src/inference/row-coalescer';

/**
 * RowCoalescer over a real child process and its real IPC channel. The child stands in for the
 * inference process (no TensorFlow.js: this is about grouping): it answers each `rows` message
 * with, per instance, the sum of its values and how many requests the message carried.
 */
const ECHO_CHILD = `
process.on('message', (msgs) => {
  process.send(msgs.map((m) => {
    const { x, parts } = m.task;
    const output = new Float32Array(parts.reduce((n, p) => n + p.count, 0) * 2);
    let row = 0;
    for (const p of parts) {
      const size = p.length / p.count;
      for (let i = 0; i < p.count; i++, row++) {
        let sum = 0;
        for (let k = 0; k < size; k++) sum += x[p.offset + i * size + k];
        output[row * 2] = sum;
        output[row * 2 + 1] = parts.length;
      }
    }
    return { id: m.id, ok: true, value: { output, rowSize: 2, shape: [2], labels: null, parts: parts.map((p) => ({ ok: true, count: p.count })) } };
  }));
});
process.on('disconnect', () => process.exit(0));
`;

describe('RowCoalescer', () => {
  let dir: string;
  let child: InferenceProcess;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'graft-rows-'));
    await fs.writeFile(path.join(dir, 'echo.js'), ECHO_CHILD);
    child = new InferenceProcess(path.join(dir, 'echo.js'), {} as InferenceSettings, { timeoutMs: 10_000, logger: pino({ enabled: false }), onExit: () => undefined });
  });

  afterAll(async () => {
    await child.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const ask = (coalescer: RowCoalescer, i: number, count = 1) =>
    coalescer.predict(child, { dir: '/ckpt', checkpoint: 'ckpt', top: 1, input: { kind: 'rows', x: Float32Array.from({ length: count * 3 }, (_, k) => i + k), count, dims: [3] } });
  const outputs = (out: PredictOutput) => ('outputs' in out ? out.outputs : []);

  it('sends a burst in chunks of ROWS_CHUNK requests (the child starts on the first while the rest are read), each answered with its own rows', async () => {
    const coalescer = new RowCoalescer(() => 0);
    const n = 2 * ROWS_CHUNK + 3;
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => ask(coalescer, i)));
    answers.forEach((out, i) => expect(outputs(out)).toEqual([[3 * i + 3, i < 2 * ROWS_CHUNK ? ROWS_CHUNK : 3]]));
  });

  it('sends what one turn of the event loop gathered as one message, and a lone request at once', async () => {
    const coalescer = new RowCoalescer(() => 0);
    const three = await Promise.all([ask(coalescer, 0), ask(coalescer, 10, 2), ask(coalescer, 20)]);
    expect(three.map(outputs)).toEqual([[[3, 3]], [[33, 3], [42, 3]], [[63, 3]]]);
    expect(outputs(await ask(coalescer, 5))).toEqual([[18, 1]]);
  });
});
