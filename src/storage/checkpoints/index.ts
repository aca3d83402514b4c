/**
 * Checkpoints on the volume, seen without TensorFlow: the manifest format (manifest.ts), the
 * parsing of model.json and manifest.json (parse.ts), the layer table of a checkpoint graft did
 * not write (layer-table.ts) and the catalog the API serves (catalog.ts).
 */
export * from './manifest';
export * from './parse';
export * from './layer-table';
export * from './catalog';
