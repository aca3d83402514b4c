import type { Static, TObject, TProperties } from 'typebox';
import type { GraftError } from '../../errors';

/**
 * One kind of layer a transfer job may append after `model.cut`. Everything about it lives in
 * its own file under src/spec/heads/: the spec fields it takes (a TypeBox fragment merged into
 * the head-layer schema), the checks that tie those fields together, its documentation and its
 * translation into a TensorFlow.js layer as plain data. The engine builds any registered
 * TensorFlow.js class from that data, so adding a head type is one file plus one line in
 * src/spec/heads/index.ts.
 */

/** A TensorFlow.js layer as data: its registered class name and constructor config. */
export interface HeadLayerPlan {
  className: string;
  config: Record<string, unknown>;
}

export interface HeadType<Name extends string = string, Fields extends TProperties = TProperties> {
  /** The spec's `type` value. */
  readonly type: Name;
  /** One line for the API reference. */
  readonly description: string;
  /** The fields this type takes besides `type` and `name`; each must be `Type.Optional`. */
  readonly fields: Fields;
  /** Fields the spec must give (the schema cannot say so: the object is shared by all types). */
  readonly required: readonly (keyof Fields & string)[];
  /** Rules beyond "required" and "does not apply"; `at` is the layer's JSON pointer. */
  check?(layer: Static<TObject<Fields>>, at: string): GraftError[];
  /** The TensorFlow.js layer this spec entry becomes (the engine adds the name and seeds). */
  plan(layer: Static<TObject<Fields>>): HeadLayerPlan;
}

/** Declares a head type with its field types inferred for `plan` and `check`. */
export function defineHead<const Name extends string, Fields extends TProperties>(head: HeadType<Name, Fields>): HeadType<Name, Fields> {
  return head;
}
