import { SingleBar } from 'cli-progress';
import type { GraftApi, Job } from './api';
import { eventLine } from './format';

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const POLL_MS = 1000;

/**
 * Follows a job until it ends: its events arrive over Server-Sent Events (status changes and one
 * line per epoch, printed above the bar), and the bar's batch position, loss and ETA come from the
 * job's progress (the worker updates it every second within an epoch). Everything goes to
 * `out` (stderr), so stdout stays free for --json. Resolves with the finished job.
 */
export async function watchJob(api: GraftApi, id: string, out: NodeJS.WriteStream, showBar: boolean): Promise<Job> {
  const bar = showBar
    ? new SingleBar({
        stream: out,
        format: ' {bar} {percentage}% | epoch {epoch}/{epochs} batch {batch}/{batches} | loss {loss} | {phase} | ETA {eta_formatted}',
        barsize: 30,
        hideCursor: true,
        etaBuffer: 50,
        clearOnComplete: false,
      })
    : null;
  let started = false;
  const print = (line: string) => {
    if (bar && started) {
      // cli-progress redraws on the line it owns: clear it, print, let the next update redraw.
      out.write('\r\x1b[2K' + line + '\n');
      bar.render();
    } else out.write(line + '\n');
  };

  const refresh = async (): Promise<Job> => {
    const job = await api.getJob(id);
    const p = job.progress;
    if (bar && p && p.epochs > 0 && p.batches > 0) {
      const total = p.epochs * p.batches;
      const value = Math.min(total, Math.max(0, (p.epoch - 1) * p.batches + p.batch));
      const payload = { epoch: p.epoch, epochs: p.epochs, batch: p.batch, batches: p.batches, loss: p.loss === null ? '-' : p.loss.toFixed(4), phase: p.phase ?? 'training' };
      if (!started) {
        bar.start(total, value, payload);
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(value, payload);
      }
    }
    return job;
  };

  const stop = new AbortController();
  const poller = (async () => {
    while (!stop.signal.aborted) {
      const job = await refresh().catch(() => null);
      if (job && TERMINAL.has(job.status)) return;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  })();

  try {
    for await (const event of api.streamEvents(id, stop.signal)) print(eventLine(event));
  } finally {
    stop.abort();
    await poller;
  }
  const job = await refresh();
  bar?.stop();
  return job;
}
