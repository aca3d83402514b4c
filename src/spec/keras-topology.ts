/**
 * Reading a Keras / TensorFlow.js model JSON without TensorFlow.js: the one place that knows
 * where the layer list sits (Sequential `config.layers`, old Keras' `config` as a list, or
 * Functional `config.layers`) and which wrappers to look through (`modelTopology` of a tfjs
 * model.json, `model_config` of a Keras-converted one), so the API's checks and the catalog
 * read a topology the same way TensorFlow.js's loader will.
 */
type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface TopologyLayer {
  /** `config.name`, else the entry's own `name` (Functional models carry both); null if neither. */
  name: string | null;
  /** `class_name` (Keras) or `className`; null if absent. */
  className: string | null;
  config: Json;
}

/** The model config inside the wrappers a model JSON may have. */
export function modelConfig(topology: Json): Json {
  let node = topology;
  if (isObject(node.modelTopology)) node = node.modelTopology;
  if (isObject(node.model_config)) node = node.model_config;
  return node;
}

/** The JSON pointer of the layer list inside `topology` (for errors that point at one layer). */
export function layerListPointer(topology: Json): string {
  let pointer = '';
  let node = topology;
  if (isObject(node.modelTopology)) {
    node = node.modelTopology;
    pointer += '/modelTopology';
  }
  if (isObject(node.model_config)) {
    node = node.model_config;
    pointer += '/model_config';
  }
  return Array.isArray(node.config) ? `${pointer}/config` : `${pointer}/config/layers`;
}

/** The top-level layers in the order the model lists them; null when there is no layer list. */
export function topologyLayers(topology: Json): TopologyLayer[] | null {
  const config = modelConfig(topology).config;
  const list = Array.isArray(config) ? config : isObject(config) && Array.isArray(config.layers) ? config.layers : null;
  if (!list) return null;
  return list.map((entry) => {
    const layer = isObject(entry) ? entry : {};
    const cfg = isObject(layer.config) ? layer.config : {};
    const name = typeof cfg.name === 'string' ? cfg.name : typeof layer.name === 'string' ? layer.name : null;
    const cls = layer.class_name ?? layer.className;
    return { name, className: typeof cls === 'string' ? cls : null, config: cfg };
  });
}

/** Every top-level layer name, or null unless each layer has one (then the list cannot be trusted). */
export function topologyLayerNames(topology: Json): string[] | null {
  const layers = topologyLayers(topology);
  if (!layers) return null;
  const names = layers.map((l) => l.name).filter((n): n is string => n !== null);
  return names.length === layers.length ? names : null;
}
