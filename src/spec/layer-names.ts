import { UnprocessableError } from '../errors';

/** Layer names of user topologies: checked before any user regex sees them, and before they name files or log lines. */
export const LAYER_NAME_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$';
const LAYER_NAME_RE = new RegExp(LAYER_NAME_PATTERN);

export function isValidLayerName(name: string): boolean {
  return LAYER_NAME_RE.test(name);
}

/** 422 `invalid_layer_name` pointing at the name inside the topology. */
export function invalidLayerName(name: string, param: string): UnprocessableError {
  const shown = name.length > 80 ? `${JSON.stringify(name.slice(0, 80))}… (${name.length} characters)` : JSON.stringify(name);
  return new UnprocessableError(
    'invalid_layer_name',
    `The topology has a layer named ${shown}: layer names must be 1-128 letters, digits, '_', '.', ':', '/' or '-', starting with a letter, digit or '_'.`,
    param,
  );
}
