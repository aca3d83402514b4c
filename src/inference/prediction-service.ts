import { PUBLIC_TENANT, type Principal } from '../auth/principal';
import type { CheckpointCatalog } from '../storage/checkpoints';
import { locateCheckpoint, type CheckpointNamespace } from './checkpoint-location';
import type { EvictionBus } from './eviction-bus';
import type { InferenceClient } from './inference-client';
import type { InferenceStats, PredictInput, PredictOutput } from './protocol';

/** What the routes use: predict with a checkpoint, and tell every inference process one was deleted. */
export class PredictionService {
  constructor(private readonly deps: { checkpoints: CheckpointCatalog; client: InferenceClient; bus: EvictionBus }) {}

  async predict(principal: Principal, name: string, input: PredictInput, opts: { top: number; layer?: string; namespace?: CheckpointNamespace }): Promise<PredictOutput> {
    const dir = locateCheckpoint(this.deps.checkpoints, principal, name, opts.namespace);
    this.deps.bus.start();
    return this.deps.client.predict({ dir, checkpoint: opts.namespace === 'public' ? `${PUBLIC_TENANT}/${name}` : name, input, top: opts.top, layer: opts.layer });
  }

  /** After a checkpoint folder was removed: every API process's children drop its model. */
  async deleted(dir: string): Promise<void> {
    await Promise.all([this.deps.client.evict(dir), this.deps.bus.publish(dir)]);
  }

  stats(): Promise<InferenceStats[]> {
    return this.deps.client.stats();
  }

  get busy(): number {
    return this.deps.client.busy;
  }
}
