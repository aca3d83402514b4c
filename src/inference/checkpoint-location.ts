import type { Principal } from '../auth/principal';
import type { CheckpointCatalog } from '../storage/checkpoints';

/**
 * The one place prediction turns `{name}` into a checkpoint folder, for `principal`. Today every
 * checkpoint lives in one namespace; with tenants (issue 11) this is where the name is resolved
 * in the principal's tenant (or `public/`) and the checkpoint's access rules are applied.
 * Throws 404 checkpoint_not_found.
 */
export async function locateCheckpoint(checkpoints: CheckpointCatalog, _principal: Principal, name: string): Promise<string> {
  return checkpoints.folder(name);
}
