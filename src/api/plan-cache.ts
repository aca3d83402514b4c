import path from 'node:path';
import { GraftError } from '../errors';
import type { JobPlan } from '../spec/plan';
import type { DatasetInfo } from '../spec/preflight';
import type { JobSpec } from '../spec/schema';
import type { DataLayout } from '../storage/layout';
import { FileMemo } from './file-memo';

/**
 * Remembers the outcome of planning (a JobPlan, or the GraftError the job would fail with) per
 * network-relevant input, so a client that submits the same recipe many times (sweeps over seeds
 * or learning rates, retries, CI) pays for building the network once instead of on every request.
 *
 * The key is everything the plan depends on: the spec's network part (type, source, freeze, model,
 * lrMultipliers), the dataset's shape and classes, and the identity of the source checkpoint's files (inode, size and mtime of
 * its model.json: a checkpoint is immutable once written, so a new one under the same name is a
 * new file). Bounded; the least recently used entry goes first.
 */
export const PLAN_CACHE_ENTRIES = 1000;

type Outcome = { ok: true; plan: JobPlan } | { ok: false; error: GraftError };

export class PlanCache {
  private readonly entries = new Map<string, Outcome>();
  /** Plans being built: concurrent requests for one recipe wait for the same build (one pool task). */
  private readonly building = new Map<string, Promise<Outcome>>();
  /** The source checkpoint's model.json identity, re-stat'ed at most every FILE_RECHECK_MS. */
  private readonly sourceStamps = new FileMemo<string>();

  constructor(
    private readonly layout: DataLayout,
    private readonly maxEntries = PLAN_CACHE_ENTRIES,
  ) {}

  /** `tenant`: the one the spec's names are relative to (part of the key: two tenants' `mnist` differ). */
  async getOrPlan(spec: JobSpec, dataset: DatasetInfo, tenant: string, plan: () => Promise<JobPlan>): Promise<JobPlan> {
    const key = await this.key(spec, dataset, tenant);
    let outcome = key ? this.entries.get(key) : undefined;
    if (outcome) {
      this.entries.delete(key!);
      this.entries.set(key!, outcome);
    } else if (key) {
      let pending = this.building.get(key);
      if (!pending) {
        pending = this.build(plan).finally(() => this.building.delete(key));
        this.building.set(key, pending);
      }
      outcome = await pending;
      // Only the job's own verdicts are kept; limits (time, memory, a full queue) may pass next time.
      if (outcome.ok || !isTransient(outcome.error)) this.remember(key, outcome);
    } else {
      outcome = await this.build(plan);
    }
    if (!outcome.ok) throw outcome.error;
    return outcome.plan;
  }

  private async build(plan: () => Promise<JobPlan>): Promise<Outcome> {
    try {
      return { ok: true, plan: await plan() };
    } catch (err) {
      if (!(err instanceof GraftError)) throw err;
      return { ok: false, error: err };
    }
  }

  private remember(key: string, outcome: Outcome): void {
    this.entries.set(key, outcome);
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /** null when the source cannot be identified (then nothing is cached). */
  private async key(spec: JobSpec, dataset: DatasetInfo, tenant: string): Promise<string | null> {
    let source: string | null = null;
    if (spec.type === 'transfer' && spec.source) {
      const target = this.layout.forTenant(tenant).resolveRef(spec.source.checkpoint);
      if (!target) return null;
      const dir = target.layout.checkpointDir(target.name);
      source = await this.sourceStamps.get(dir, path.join(dir, 'model.json'), async (stamp) => stamp);
      if (source === 'absent') return null;
    }
    // Only what shapes the network and its plan: a sweep over seeds, epochs or learning rates
    // (and every output name) shares one plan. The key is the JSON itself (a few hundred bytes,
    // bounded by the spec's size limit, PLAN_CACHE_ENTRIES of them): hashing it or ordering its
    // keys cost more per submission than they save. A client that orders a spec's keys otherwise
    // only gets its own entry.
    const network = { type: spec.type, source: spec.source ?? null, freeze: spec.freeze ?? null, model: spec.model ?? null, lrMultipliers: spec.training?.lrMultipliers ?? null };
    return JSON.stringify({ tenant, network, dataset: { name: spec.dataset.name, inputShape: dataset.inputShape, numClasses: dataset.numClasses }, source });
  }
}

const TRANSIENT_CODES = new Set(['time_limit_exceeded', 'memory_limit_exceeded', 'pool_saturated', 'shutting_down']);

function isTransient(err: GraftError): boolean {
  return TRANSIENT_CODES.has(err.code) || err.statusCode >= 500;
}
