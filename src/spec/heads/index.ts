import type { TProperties, TSchema } from 'typebox';
import { ValidationError, type GraftError } from '../../errors';
import { batchNormalization } from './batchNormalization';
import { dense } from './dense';
import { dropout } from './dropout';
import { flatten } from './flatten';
import { globalAveragePooling2d } from './globalAveragePooling2d';
import type { HeadLayerPlan, HeadType } from './head-type';
import { layerNormalization } from './layerNormalization';

export type { HeadLayerPlan, HeadType } from './head-type';
export { ACTIVATIONS } from './dense';

/**
 * The head layer types a transfer job may append, in the order the API reference lists them.
 * To add one, write src/spec/heads/<type>.ts with `defineHead` and list it here.
 */
export const HEAD_TYPES = [dense, dropout, flatten, globalAveragePooling2d, batchNormalization, layerNormalization] as const;

type Registered = (typeof HEAD_TYPES)[number];
export type HeadTypeName = Registered['type'];
type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;
/** Every field any head type takes (the head-layer object is one flat object shared by all). */
export type HeadFields = UnionToIntersection<Registered['fields']>;

export const HEAD_LAYER_TYPES = HEAD_TYPES.map((h) => h.type) as HeadTypeName[];

const byType = new Map<string, HeadType>(HEAD_TYPES.map((h) => [h.type, h as unknown as HeadType]));

/**
 * Which types take each field. Types may share a field (say, `activation`) if they declare it
 * identically, description included: the head-layer object has one schema per field name.
 */
const owners = new Map<string, Set<string>>();
const fields: Record<string, TSchema> = {};
for (const head of HEAD_TYPES as readonly HeadType[]) {
  for (const [field, schema] of Object.entries(head.fields)) {
    if (fields[field] && JSON.stringify(fields[field]) !== JSON.stringify(schema)) {
      throw new Error(`head type ${head.type} declares the field "${field}" unlike ${[...owners.get(field)!].join(', ')}`);
    }
    fields[field] = schema;
    owners.set(field, (owners.get(field) ?? new Set<string>()).add(head.type));
  }
}
export const HEAD_FIELDS = fields as TProperties as HeadFields;

/** The `type` field's description: one line per registered type. */
export const HEAD_TYPES_DESCRIPTION = `Layer kind. ${HEAD_TYPES.map((h) => `\`${h.type}\`: ${h.description}`).join('; ')}.`;

export function headType(type: string): HeadType {
  const head = byType.get(type);
  if (!head) throw new Error(`unknown head layer type ${type}`);
  return head;
}

/** A spec head layer as the schema admits it: `type`, `name` and any registered field. */
export type HeadLayerInput = { type: string; name?: string } & Record<string, unknown>;

/**
 * The checks of one schema-valid head layer: its required fields are there, no field of another
 * type is, and its own rules hold. Fields are visited in registry order, so the problems come
 * out in the same order whatever the type.
 */
export function checkHeadLayer(layer: HeadLayerInput, at: string): GraftError[] {
  const head = headType(layer.type);
  const errors: GraftError[] = [];
  for (const [field, types] of owners) {
    const given = layer[field] !== undefined;
    if (types.has(head.type)) {
      if (!given && head.required.includes(field)) errors.push(new ValidationError('missing_field', `A ${head.type} layer needs \`${field}\`.`, `${at}/${field}`));
    } else if (given) {
      errors.push(new ValidationError('invalid_field', `\`${field}\` does not apply to a ${head.type} layer.`, `${at}/${field}`));
    }
  }
  if (errors.length === 0 && head.check) errors.push(...head.check(layer as never, at));
  return errors;
}

/** The TensorFlow.js layer a head layer becomes, named. */
export function headLayerPlan(layer: HeadLayerInput, name: string): HeadLayerPlan & { name: string } {
  return { name, ...headType(layer.type).plan(layer as never) };
}
