import { BACKEND_NAMES, type BackendName } from '../../../src/spec/backends';
import type { Backend } from './backend-type';
import { cpu } from './cpu';
import { tensorflow } from './tensorflow';
import { wasm } from './wasm';

export type { Backend } from './backend-type';

/** Every backend of src/spec/backends.ts (the type checker insists on all of them). */
const REGISTRY: Record<BackendName, Backend> = { tensorflow, wasm, cpu };

/** The backends in the order `auto` tries them. */
export const BACKENDS: readonly Backend[] = BACKEND_NAMES.map((name) => REGISTRY[name]);

export function backendNamed(name: string): Backend | undefined {
  return BACKENDS.find((b) => b.name === name);
}
