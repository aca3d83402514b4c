import { ValidationError } from '../errors';
import type { RowsInput } from '../inference/protocol';

/**
 * Prediction instances sent as bytes instead of JSON text: parsing 784 decimal numbers costs the
 * API more than the rest of a request, and numeric clients hold float arrays anyway.
 *
 * - `application/octet-stream`: little-endian float32 values, instances back to back
 *   (`arr.astype('<f4').tobytes()`); the inference process divides them by the model's input size.
 * - `application/x-npy`: a NumPy `.npy` file (`np.save`) of dtype `<f4` or `<f8`, C order, shape
 *   `(instances, ...input shape)` or `(instances, input size)`; a 1-d array is one flat instance.
 *
 * The .npy header is a short Python dict literal (format spec: numpy.lib.format); reading its three
 * keys is a few lines, so no npy package (the one on npm fetches URLs and pulls in cross-fetch).
 */
export const RAW_FLOAT32_TYPE = 'application/octet-stream';
export const NPY_TYPE = 'application/x-npy';

const NPY_MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/** Longest header read (numpy writes 64-byte-aligned headers; 4 KiB is far more than 3 keys need). */
const NPY_MAX_HEADER = 4096;

const bad = (message: string) => new ValidationError('invalid_body', message, '/instances');

/** A raw float32 body: `count` unknown here (the inference process knows the model's input size). */
export function rowsFromFloat32(body: Buffer, maxCount: number): RowsInput {
  if (body.length === 0 || body.length % 4 !== 0) throw bad(`An ${RAW_FLOAT32_TYPE} body holds little-endian float32 values (4 bytes each); this one has ${body.length} bytes.`);
  return { kind: 'rows', x: float32Values(body, 'f4'), count: null, dims: null, maxCount };
}

/** A .npy body: its shape gives the instance count and each instance's dims. */
export function rowsFromNpy(body: Buffer): RowsInput {
  if (body.length < 10 || !body.subarray(0, 6).equals(NPY_MAGIC)) throw bad(`An ${NPY_TYPE} body must be a .npy file (np.save); it does not start with \\x93NUMPY.`);
  const major = body[6];
  const headerLength = major === 1 ? body.readUInt16LE(8) : body.length >= 12 ? body.readUInt32LE(8) : -1;
  const start = major === 1 ? 10 : 12;
  if (![1, 2, 3].includes(major) || headerLength < 0 || headerLength > NPY_MAX_HEADER || start + headerLength > body.length) throw bad(`Unsupported or truncated .npy header (format version ${major}).`);
  const header = body.toString('latin1', start, start + headerLength);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad('The .npy header lacks descr, fortran_order or shape.');
  if (fortran === 'True') throw bad('The .npy array is in Fortran order; save a C-ordered array (np.ascontiguousarray).');
  const dtype = descr === '<f4' ? 'f4' : descr === '<f8' ? 'f8' : null;
  if (!dtype) throw bad(`The .npy array has dtype ${descr}; send float32 or float64 (arr.astype('<f4')), in the scale the model was trained on.`);
  const shape = shapeText.split(',').map((d) => d.trim()).filter((d) => d !== '').map(Number);
  if (shape.length === 0 || shape.some((d) => !Number.isSafeInteger(d) || d < 1)) throw bad(`The .npy array has shape (${shapeText}); it needs (instances, ...input shape).`);
  const values = shape.reduce((a, b) => a * b, 1);
  const data = body.subarray(start + headerLength);
  const width = dtype === 'f4' ? 4 : 8;
  if (data.length !== values * width) throw bad(`The .npy array of shape (${shape.join(', ')}) needs ${values * width} bytes of data; the body has ${data.length}.`);
  const [count, ...dims] = shape.length === 1 ? [1, shape[0]] : shape;
  return { kind: 'rows', x: float32Values(data, dtype), count, dims };
}

/**
 * The values as a Float32Array: float32 bytes at an aligned offset are read in place (the body is
 * this request's own; the coalescer copies it into its batch anyway), anything else is copied to an
 * aligned array of its own (a Buffer's offset need not be aligned; float64 is narrowed).
 */
function float32Values(bytes: Buffer, dtype: 'f4' | 'f8'): Float32Array {
  if (dtype === 'f4' && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  const copy = new Uint8Array(bytes); // aligned, owned
  return dtype === 'f4' ? new Float32Array(copy.buffer) : Float32Array.from(new Float64Array(copy.buffer));
}
