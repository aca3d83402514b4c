import { PUBLIC_TENANT, type Principal } from '../auth/principal';
import type { CheckpointCatalog } from '../storage/checkpoints';

/** Which namespace a prediction names its checkpoint in: the caller's tenant, or the shared one. */
export type CheckpointNamespace = 'own' | 'public';

/**
 * The one place prediction turns `{name}` into a checkpoint folder, for `principal`: its own
 * tenant's checkpoint, or the public one (anyone may predict with it). Another tenant's
 * checkpoint cannot be named at all. The folder is not looked at here: the inference process
 * stats its manifest on every request anyway and answers `checkpoint_not_found` with the
 * catalog's very message, so a missing name and another tenant's look alike.
 */
export function locateCheckpoint(checkpoints: CheckpointCatalog, principal: Principal, name: string, namespace: CheckpointNamespace = 'own'): string {
  return checkpoints.forTenant(namespace === 'public' ? PUBLIC_TENANT : principal.tenant).folderOf(name);
}
