import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { GraftError } from '../errors';
import type { JobPlan } from '../spec/plan';
import type { DatasetInfo } from '../spec/preflight';
import type { JobSpec } from '../spec/schema';
import type { DataLayout } from '../storage/layout';
import { stableStringify } from '../jobs/job-service';

/**
 * Remembers the outcome of planning (a JobPlan, or the GraftError the job would fail with) per
 * network-relevant input, so a client that submits the same recipe many times (sweeps over seeds
 * or learning rates, retries, CI) pays for building the network once instead of on every request.
 *
 * The key is everything the plan depends on: the spec without its output name, the dataset's
 * shape and classes, and the identity of the source checkpoint's files (inode, size and mtime of
 * its model.json: a checkpoint is immutable once written, so a new one under the same name is a
 * new file). Bounded; the least recently used entry goes first.
 */
export const PLAN_CACHE_ENTRIES = 1000;

type Outcome = { ok: true; plan: JobPlan } | { ok: false; error: GraftError };

export class PlanCache {
  private readonly entries = new Map<string, Outcome>();

  constructor(
    private readonly layout: DataLayout,
    private readonly maxEntries = PLAN_CACHE_ENTRIES,
  ) {}

  async getOrPlan(spec: JobSpec, dataset: DatasetInfo, plan: () => Promise<JobPlan>): Promise<JobPlan> {
    const key = await this.key(spec, dataset);
    let outcome = key ? this.entries.get(key) : undefined;
    if (outcome) {
      this.entries.delete(key!);
      this.entries.set(key!, outcome);
    } else {
      try {
        outcome = { ok: true, plan: await plan() };
      } catch (err) {
        // Only the job's own verdicts are cached; limits (time, memory, a full queue) may pass next time.
        if (!(err instanceof GraftError) || isTransient(err)) throw err;
        outcome = { ok: false, error: err };
      }
      if (key) this.remember(key, outcome);
    }
    if (!outcome.ok) throw outcome.error;
    return outcome.plan;
  }

  private remember(key: string, outcome: Outcome): void {
    this.entries.set(key, outcome);
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /** null when the source cannot be identified (then nothing is cached). */
  private async key(spec: JobSpec, dataset: DatasetInfo): Promise<string | null> {
    let source: string | null = null;
    if (spec.type === 'transfer' && spec.source) {
      const stat = await fs.stat(path.join(this.layout.checkpointDir(spec.source.checkpoint), 'model.json')).catch(() => null);
      if (!stat) return null;
      source = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    }
    const { output: _output, ...network } = spec;
    return createHash('sha256').update(stableStringify({ network, dataset: { inputShape: dataset.inputShape, numClasses: dataset.numClasses }, source })).digest('hex');
  }
}

const TRANSIENT_CODES = new Set(['time_limit_exceeded', 'memory_limit_exceeded', 'pool_saturated', 'shutting_down']);

function isTransient(err: GraftError): boolean {
  return TRANSIENT_CODES.has(err.code) || err.statusCode >= 500;
}
