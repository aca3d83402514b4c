/**
 * The TensorFlow.js backends graft can train on, in the order `auto` tries them. Both sides need
 * the list (the config schema in the API process, the backend registry in the worker), and the
 * core must not load TensorFlow.js, so the names live here and each backend's code lives in
 * workers/engine/backends/<name>.ts, registered in workers/engine/backends/index.ts.
 */
export const BACKEND_NAMES = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** GRAFT_BACKEND's values: a backend, or `auto` (the first of BACKEND_NAMES that loads). */
export const BACKEND_PREFERENCES = ['auto', ...BACKEND_NAMES] as const;
export type BackendPreference = (typeof BACKEND_PREFERENCES)[number];
