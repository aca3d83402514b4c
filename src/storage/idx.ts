import buffer from 'node:buffer';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { UnprocessableError } from '../errors';

/**
 * IDX, MNIST's own file format (http://yann.lecun.com/exdb/mnist/):
 *
 *   0x00 0x00 <type> <ndims>   then ndims big-endian uint32 dimensions, then the data, row-major.
 *
 * graft reads and writes the unsigned-byte type only: that is what MNIST-style image and label
 * files use. Files may be gzip-compressed whatever their name says: compression is detected from
 * the content (magic bytes), because renamed or re-compressed downloads are common.
 *
 * Nothing here inflates without a bound: a file is read only up to the size its header implies
 * and never beyond `maxBytes` (DATASET_MAX_BYTES), so a gzip bomb or a lying header costs a 422,
 * not the process's memory.
 */

const GZIP_MAGIC = [0x1f, 0x8b] as const;
const IDX_TYPE_UBYTE = 0x08;
const PREAMBLE_BYTES = 4;
const DIM_BYTES = 4;
/** ndims is one byte, so no header is longer than this. */
const MAX_HEADER_BYTES = PREAMBLE_BYTES + 255 * DIM_BYTES;
const MAX_DIM = 0xffffffff;

const gunzip = promisify(zlib.gunzip);
const gzip = promisify(zlib.gzip);

export interface IdxHeader {
  /** Dimensions, outermost first (e.g. [60000, 28, 28] for MNIST images). */
  dims: number[];
  /** Bytes before the data. */
  headerBytes: number;
}

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export type IdxProblem = 'truncated' | 'bad_magic' | 'unsupported_type' | 'size_mismatch' | 'corrupt_gzip' | 'too_large';

/**
 * A broken IDX file is a broken dataset: the caller can fix it, so it is a 4xx with the stable
 * code `dataset_invalid`; `details.reason` says which check failed.
 */
function idxError(reason: IdxProblem, file: string, message: string): UnprocessableError {
  return new UnprocessableError('dataset_invalid', `${file}: ${message}`, null, { reason, file });
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === GZIP_MAGIC[0] && bytes[1] === GZIP_MAGIC[1];
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/**
 * Parses the header of (uncompressed) IDX bytes; `bytes` may be just a prefix of the file.
 * `file` names the file in error messages.
 */
export function parseIdxHeader(bytes: Uint8Array, file = 'IDX data'): IdxHeader {
  if (bytes.length < PREAMBLE_BYTES) {
    throw idxError('truncated', file, `the file holds ${bytes.length} bytes, fewer than the ${PREAMBLE_BYTES}-byte IDX preamble.`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const got = [...bytes.subarray(0, PREAMBLE_BYTES)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    throw idxError('bad_magic', file, `not an IDX file: it starts with ${got}, an IDX file starts with 00 00 <type> <ndims>.`);
  }
  if (bytes[2] !== IDX_TYPE_UBYTE) {
    throw idxError('unsupported_type', file, `IDX data type 0x${bytes[2].toString(16).padStart(2, '0')} is not supported; graft reads unsigned-byte (0x08) files.`);
  }
  const ndims = bytes[3];
  const headerBytes = PREAMBLE_BYTES + ndims * DIM_BYTES;
  if (bytes.length < headerBytes) {
    throw idxError('truncated', file, `the header declares ${ndims} dimensions (${headerBytes} bytes) but the file ends after ${bytes.length} bytes.`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, headerBytes);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(PREAMBLE_BYTES + i * DIM_BYTES, false));
  return { dims, headerBytes };
}

/** Parses a whole IDX file's bytes, raw or gzip-compressed, inflating at most `maxBytes`. */
export async function parseIdx(bytes: Uint8Array, file = 'IDX data', maxBytes = Number.MAX_SAFE_INTEGER): Promise<IdxArray> {
  const raw = isGzip(bytes) ? await gunzipOrExplain(bytes, file, maxBytes) : bytes;
  if (raw.length > maxBytes) throw tooLarge(file, `it holds ${raw.length} bytes`, maxBytes);
  const header = parseIdxHeader(raw, file);
  checkDataSize(header, raw.length, file);
  return { dims: header.dims, data: raw.subarray(header.headerBytes) };
}

function checkDataSize(header: IdxHeader, totalBytes: number, file: string): void {
  const expected = product(header.dims);
  const actual = totalBytes - header.headerBytes;
  if (actual !== expected) {
    const hint = actual < expected ? 'the file is truncated' : 'extra bytes follow the data';
    throw idxError('size_mismatch', file, `dimensions [${header.dims.join(', ')}] need ${expected} data bytes but the file holds ${actual} (${hint}).`);
  }
}

async function gunzipOrExplain(bytes: Uint8Array, file: string, maxBytes: number): Promise<Buffer> {
  try {
    return await gunzip(bytes, { maxOutputLength: Math.min(maxBytes + 1, buffer.constants.MAX_LENGTH) });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(file, 'it inflates to more', maxBytes);
    throw gunzipProblem(err, file);
  }
}

/**
 * Reads a whole IDX file, raw or gzip-compressed, inflating at most the size its header implies
 * (and never more than `maxBytes`): anything beyond is a size mismatch found without buffering it.
 */
export async function readIdxFile(file: string, displayName = path.basename(file), maxBytes = Number.MAX_SAFE_INTEGER): Promise<IdxArray> {
  const { header, compressed, rawSize } = await readBoundedHeader(file, displayName, maxBytes);
  const expected = header.headerBytes + product(header.dims);
  const bytes = await fs.readFile(file);
  if (!compressed) {
    checkDataSize(header, bytes.length, displayName); // the file may have changed since the stat
    return { dims: header.dims, data: bytes.subarray(header.headerBytes) };
  }
  if (rawSize > maxBytes) throw tooLarge(displayName, `the compressed file holds ${rawSize} bytes`, maxBytes);
  let raw: Buffer;
  try {
    // One byte more than expected is enough to tell "extra bytes follow the data".
    raw = await gunzip(bytes, { maxOutputLength: Math.min(expected + 1, buffer.constants.MAX_LENGTH) });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw idxError('size_mismatch', displayName, `dimensions [${header.dims.join(', ')}] need ${product(header.dims)} data bytes but the file inflates to more (extra bytes follow the data).`);
    }
    throw gunzipProblem(err, displayName);
  }
  checkDataSize(header, raw.length, displayName);
  return { dims: header.dims, data: raw.subarray(header.headerBytes) };
}

/**
 * Proves a file holds exactly the data its header promises by inflating it as a stream, nothing
 * kept: the upload check for image files too large to hold in memory just to count them.
 */
export async function checkIdxFile(file: string, displayName = path.basename(file), maxBytes = Number.MAX_SAFE_INTEGER): Promise<IdxHeader> {
  const { header, compressed } = await readBoundedHeader(file, displayName, maxBytes);
  if (!compressed) return header; // readIdxHeader compared the size already
  const expected = header.headerBytes + product(header.dims);
  let total = 0;
  const source = createReadStream(file);
  try {
    for await (const chunk of source.pipe(zlib.createGunzip()) as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > expected) break;
    }
  } catch (err) {
    throw gunzipProblem(err, displayName);
  } finally {
    source.destroy();
  }
  checkDataSize(header, Math.min(total, expected + 1), displayName);
  return header;
}

/**
 * Reads only the header, decompressing just the first bytes of a gzip file: describing a
 * dataset must not inflate tens of megabytes. For raw files the data size is checked too
 * (it costs one stat); a gzip file's data size is only known once decompressed, so
 * `readIdxFile` and `checkIdxFile` check that. A header implying more than `maxBytes` is refused.
 */
export async function readIdxHeader(file: string, displayName = path.basename(file), maxBytes = Number.MAX_SAFE_INTEGER): Promise<IdxHeader> {
  return (await readBoundedHeader(file, displayName, maxBytes)).header;
}

async function readBoundedHeader(file: string, displayName: string, maxBytes: number): Promise<{ header: IdxHeader; compressed: boolean; rawSize: number }> {
  const { prefix, compressed, rawSize } = await readPrefix(file, MAX_HEADER_BYTES, displayName);
  const header = parseIdxHeader(prefix, displayName);
  const implied = header.headerBytes + product(header.dims);
  if (implied > maxBytes) throw tooLarge(displayName, `its header declares [${header.dims.join(', ')}], ${implied} bytes`, maxBytes);
  if (!compressed) checkDataSize(header, rawSize, displayName);
  return { header, compressed, rawSize };
}

function tooLarge(file: string, what: string, maxBytes: number): UnprocessableError {
  return idxError('too_large', file, `${what}; a dataset file may hold at most ${maxBytes} bytes (DATASET_MAX_BYTES).`);
}

function gunzipProblem(err: unknown, file: string): UnprocessableError {
  // zlib reports a cut-off stream as Z_BUF_ERROR ("unexpected end of file").
  if ((err as NodeJS.ErrnoException).code === 'Z_BUF_ERROR') return idxError('truncated', file, 'the gzip stream ends early (the file is truncated).');
  return idxError('corrupt_gzip', file, `the gzip data is corrupt (${(err as Error).message}).`);
}

/** The first `limit` uncompressed bytes of a file, gunzipping on the fly if it is gzip. */
async function readPrefix(file: string, limit: number, displayName: string): Promise<{ prefix: Buffer; compressed: boolean; rawSize: number }> {
  const handle = await fs.open(file, 'r');
  let head: Buffer;
  let rawSize: number;
  try {
    rawSize = (await handle.stat()).size;
    head = Buffer.alloc(Math.min(limit, rawSize));
    await handle.read(head, 0, head.length, 0);
  } finally {
    await handle.close();
  }
  if (!isGzip(head)) return { prefix: head, compressed: false, rawSize };

  const chunks: Buffer[] = [];
  let total = 0;
  const source = createReadStream(file);
  try {
    for await (const chunk of source.pipe(zlib.createGunzip()) as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      total += chunk.length;
      if (total >= limit) break; // stop early: the rest of the file stays compressed
    }
  } catch (err) {
    // A stream cut short is left to parseIdxHeader, which says "truncated" if the header is
    // incomplete; anything else is corrupt data.
    if ((err as NodeJS.ErrnoException).code !== 'Z_BUF_ERROR') {
      throw idxError('corrupt_gzip', displayName, `the gzip data is corrupt (${(err as Error).message}).`);
    }
  } finally {
    source.destroy(); // pipe() does not close the source when the consumer stops
  }
  return { prefix: Buffer.concat(chunks, total).subarray(0, limit), compressed: true, rawSize };
}

/** The bytes of an IDX file. Checks that the data matches the dimensions, so no writer can produce a file its reader rejects. */
export function encodeIdx(arr: IdxArray): Buffer {
  const { dims, data } = arr;
  if (dims.length > 255) throw new RangeError(`IDX supports at most 255 dimensions, got ${dims.length}.`);
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0 || d > MAX_DIM) throw new RangeError(`IDX dimensions are uint32, got ${d}.`);
  }
  if (product(dims) !== data.length) {
    throw new RangeError(`dimensions [${dims.join(', ')}] need ${product(dims)} bytes, got ${data.length}.`);
  }
  const headerBytes = PREAMBLE_BYTES + dims.length * DIM_BYTES;
  const out = Buffer.alloc(headerBytes + data.length);
  out[2] = IDX_TYPE_UBYTE;
  out[3] = dims.length;
  dims.forEach((d, i) => out.writeUInt32BE(d, PREAMBLE_BYTES + i * DIM_BYTES));
  out.set(data, headerBytes);
  return out;
}

/**
 * Writes an IDX file, gzip-compressed if asked. Node's gzip header carries no timestamp,
 * so the same array always produces the same bytes.
 */
export async function writeIdxFile(file: string, arr: IdxArray, opts: { gzip?: boolean } = {}): Promise<void> {
  const bytes = encodeIdx(arr);
  await fs.writeFile(file, opts.gzip ? await gzip(bytes) : bytes);
}
