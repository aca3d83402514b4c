import { constants as fsConstants, createReadStream, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { pipeline as pipelineCallback, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { Pack, Parser, type ReadEntry } from 'tar';
import yauzl from 'yauzl';
import { ZipFile as ZipWriter } from 'yazl';
import { DEFAULT_CONFIG, type Config } from '../config';
import { GraftError, UnprocessableError } from '../errors';

/**
 * Uploaded archives are untrusted: this module unpacks .zip, .tar.gz and .tar files into an
 * empty staging folder and guarantees nothing is written outside it. Instead of letting a
 * library materialise entries, every entry is validated here and written by our own code, which
 * only ever creates plain folders and plain files (never links, devices or FIFOs, never archive
 * modes or owners), opens files with O_EXCL|O_NOFOLLOW, and refuses to walk through anything
 * that is not a real folder. Any doubt rejects the whole archive; the caller deletes the folder.
 */

export interface ArchiveLimits {
  /** Sum of the uncompressed sizes of all entries. */
  maxTotalBytes: number;
  maxEntries: number;
  /** Uncompressed size of any single entry. */
  maxEntryBytes: number;
}

export function archiveLimits(config: Pick<Config, 'ARCHIVE_MAX_TOTAL_BYTES' | 'ARCHIVE_MAX_ENTRIES' | 'ARCHIVE_MAX_ENTRY_BYTES'>): ArchiveLimits {
  return { maxTotalBytes: config.ARCHIVE_MAX_TOTAL_BYTES, maxEntries: config.ARCHIVE_MAX_ENTRIES, maxEntryBytes: config.ARCHIVE_MAX_ENTRY_BYTES };
}

/** The configuration's defaults (config.ts is the one source of them). */
export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = archiveLimits(DEFAULT_CONFIG);

export type ArchiveType = 'zip' | 'tar.gz' | 'tar';

const ZIP_MAGIC = Buffer.from('PK\x03\x04', 'latin1');
const EMPTY_ZIP_MAGIC = Buffer.from('PK\x05\x06', 'latin1');
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const USTAR_MAGIC = Buffer.from('ustar', 'latin1');
const USTAR_MAGIC_OFFSET = 257;

/** NAME_MAX on Linux; longer segments would fail with ENAMETOOLONG halfway through. */
const MAX_SEGMENT_BYTES = 255;
/** Well below PATH_MAX even with the staging folder in front. */
const MAX_PATH_BYTES = 1024;
/** Bounds the folder walk (a mkdir per level) that each entry may cost. */
const MAX_PATH_DEPTH = 32;
/** Quoted entry names are cut to this length so a hostile name cannot flood logs. */
const MAX_QUOTED_NAME = 200;

/** Modes of what we create; the archive's own modes (setuid, world-writable...) are ignored. */
const DIR_MODE = 0o755;
const FILE_MODE = 0o644;
/** O_EXCL: never overwrite or reuse anything; O_NOFOLLOW: never write through a symlink. */
const CREATE_FILE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

/** Unix file-type bits, stored by Unix zip tools in the high 16 bits of the external attributes. */
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/**
 * Besides entry contents, a tar stream holds headers, pax records and padding, none of which
 * reach our byte counters. Bounding the whole decompressed stream at the content limit plus this
 * much per entry stops an endless run of empty metadata headers from burning CPU forever.
 */
const TAR_OVERHEAD_PER_ENTRY = 8 * 1024;

const TAR_REJECTED_TYPES: Partial<Record<ReadEntry['type'], string>> = {
  SymbolicLink: 'a symbolic link',
  Link: 'a hard link',
  CharacterDevice: 'a character device',
  BlockDevice: 'a block device',
  FIFO: 'a FIFO',
};

type EntryKind = 'file' | 'dir';

/** Identifies an archive by its first bytes; the uploaded file name is not trusted. */
export async function detectArchiveType(file: string): Promise<ArchiveType | null> {
  const head = Buffer.alloc(USTAR_MAGIC_OFFSET + USTAR_MAGIC.length);
  const handle = await fs.open(file, 'r');
  const { bytesRead } = await handle.read(head, 0, head.length, 0).finally(() => handle.close());
  const at = (offset: number, magic: Buffer) => bytesRead >= offset + magic.length && head.subarray(offset, offset + magic.length).equals(magic);
  if (at(0, ZIP_MAGIC) || at(0, EMPTY_ZIP_MAGIC)) return 'zip';
  if (at(0, GZIP_MAGIC)) return 'tar.gz';
  if (at(USTAR_MAGIC_OFFSET, USTAR_MAGIC)) return 'tar';
  return null;
}

/**
 * Unpacks `file` into `dest`, an existing empty folder, creating only folders and regular
 * files. Throws a GraftError (archive_invalid, archive_unsafe_entry, archive_too_large,
 * archive_too_many_entries) at the first problem; by then nothing has been written outside
 * `dest` and no write is still in flight, so the caller can simply delete `dest`.
 */
export async function extractArchive(file: string, dest: string, limits: ArchiveLimits): Promise<{ files: number; bytes: number }> {
  const type = await detectArchiveType(file);
  if (type === null) throw invalid('The upload is not a .zip, .tar.gz or .tar archive.');
  // Resolved once: every path built below starts from the real folder.
  const writer = new SafeWriter(await fs.realpath(dest), limits);
  try {
    if (type === 'zip') await extractZip(file, writer, limits);
    else await extractTar(file, type === 'tar.gz', writer, limits);
  } finally {
    await writer.close();
  }
  return { files: writer.files, bytes: writer.bytes };
}

/**
 * Validates entries one at a time and writes them under `root`. Only the bytes that reach
 * write() are trusted for the limits: declared sizes are checked first because that is cheap,
 * but a zip can lie about them and a decompressor can produce more than it promised.
 */
class SafeWriter {
  files = 0;
  bytes = 0;
  private entries = 0;
  private declaredBytes = 0;
  private readBytes = 0;
  private current: { name: string; bytes: number; handle: FileHandle | null } | null = null;
  /** Parent folder of the previous file, already verified: archives list siblings together. */
  private lastParent: string | null = null;

  constructor(
    private readonly root: string,
    private readonly limits: ArchiveLimits,
  ) {}

  /**
   * Starts the next entry and returns whether its data is wanted (false for folders and for
   * skipped metadata, whose data may still be passed to write() to be counted and dropped).
   */
  async begin(name: string, kind: EntryKind, declaredSize: number): Promise<boolean> {
    await this.close();
    this.entries += 1;
    if (this.entries > this.limits.maxEntries) throw tooManyEntries(this.limits);
    const segments = entrySegments(name);
    this.declaredBytes += declaredSize;
    this.checkSize(name, declaredSize, this.declaredBytes);
    this.current = { name, bytes: 0, handle: null };

    if (isMacMetadata(segments)) return false;
    if (kind === 'dir') {
      await this.makeDirs(name, segments);
      return false;
    }
    if (segments.length === 0) throw unsafe(name, 'has an empty path');
    const parent = segments.slice(0, -1);
    const parentKey = parent.join('/');
    if (parentKey !== this.lastParent) {
      await this.makeDirs(name, parent);
      this.lastParent = parentKey;
    }
    this.current.handle = await this.createFile(name, segments);
    this.files += 1;
    return true;
  }

  /** Appends data to the current entry, counting it against the limits before writing it. */
  async write(chunk: Buffer): Promise<void> {
    const entry = this.current;
    if (entry === null) throw new Error('write() before begin()');
    entry.bytes += chunk.length;
    this.readBytes += chunk.length;
    this.checkSize(entry.name, entry.bytes, this.readBytes);
    if (entry.handle === null) return;
    for (let offset = 0; offset < chunk.length; ) {
      offset += (await entry.handle.write(chunk, offset)).bytesWritten;
    }
    this.bytes += chunk.length;
  }

  /** Closes the current file, if any; safe to call more than once. */
  async close(): Promise<void> {
    const handle = this.current?.handle;
    this.current = null;
    await handle?.close();
  }

  private checkSize(name: string, entryBytes: number, totalBytes: number): void {
    if (entryBytes > this.limits.maxEntryBytes) {
      throw tooLarge(`Archive entry ${quote(name)} is larger than the limit of ${this.limits.maxEntryBytes} bytes per file.`);
    }
    if (totalBytes > this.limits.maxTotalBytes) {
      throw tooLarge(`The archive expands to more than the limit of ${this.limits.maxTotalBytes} bytes.`);
    }
  }

  /**
   * Creates each folder of `segments` below the root in turn. mkdir never follows a symlink;
   * when a name already exists, lstat tells us whether it is a real folder, so a link planted
   * earlier (by this archive or anyone else) can never redirect a later write.
   */
  private async makeDirs(name: string, segments: string[]): Promise<void> {
    let dir = this.root;
    for (const [i, segment] of segments.entries()) {
      dir = path.join(dir, segment);
      try {
        await fs.mkdir(dir, DIR_MODE);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const stat = await fs.lstat(dir);
        const existing = segments.slice(0, i + 1).join('/');
        if (stat.isSymbolicLink()) throw unsafe(name, `would pass through the symbolic link ${quote(existing)}`);
        if (!stat.isDirectory()) throw unsafe(name, `needs a folder where ${quote(existing)} is already a file`);
      }
    }
  }

  private async createFile(name: string, segments: string[]): Promise<FileHandle> {
    try {
      return await fs.open(path.join(this.root, ...segments), CREATE_FILE_FLAGS, FILE_MODE);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ELOOP') throw unsafe(name, 'duplicates an earlier entry');
      throw err;
    }
  }
}

/**
 * Splits an entry name into the path segments to create below the root, rejecting anything
 * that could name a place outside it or mean different things on different systems.
 * '.' and empty segments ('a//b', './a', 'dir/') are dropped.
 */
function entrySegments(name: string): string[] {
  if (name.includes('\0')) throw unsafe(name, 'contains a NUL byte');
  // Windows tools treat '\' as a separator, so 'a\..\..\x' is a traversal there.
  if (name.includes('\\')) throw unsafe(name, 'contains a backslash');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw unsafe(name, 'is an absolute path');
  if (Buffer.byteLength(name) > MAX_PATH_BYTES) throw unsafe(name, `is longer than ${MAX_PATH_BYTES} bytes`);
  const segments = name.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) throw unsafe(name, 'contains a ".." segment');
  if (segments.length > MAX_PATH_DEPTH) throw unsafe(name, `is nested more than ${MAX_PATH_DEPTH} folders deep`);
  if (segments.some((segment) => Buffer.byteLength(segment) > MAX_SEGMENT_BYTES)) {
    throw unsafe(name, `has a path segment longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  return segments;
}

/** macOS's Archive Utility adds '__MACOSX/' folders and '._name' AppleDouble files: harmless, and not data. */
function isMacMetadata(segments: string[]): boolean {
  return segments[0] === '__MACOSX' || (segments.length > 0 && segments[segments.length - 1].startsWith('._'));
}

// ---------------------------------------------------------------------------------------------
// zip

async function extractZip(file: string, writer: SafeWriter, limits: ArchiveLimits): Promise<void> {
  // decodeStrings is off so that no name is rejected or rewritten before our own checks:
  // names are decoded below with strictFileNames semantics (a backslash stays a backslash).
  const zip = await orInvalid(yauzl.openPromise(file, { lazyEntries: true, autoClose: true, decodeStrings: false, validateEntrySizes: true }));
  if (zip.entryCount > limits.maxEntries) {
    zip.close();
    throw tooManyEntries(limits);
  }
  for await (const entry of invalidOnError(zip.eachEntry())) {
    const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, true);
    const kind = zipEntryKind(entry, name);
    if (entry.isEncrypted()) throw invalid(`Archive entry ${quote(name)} is encrypted; upload an unencrypted archive.`);
    if (!(await writer.begin(name, kind, entry.uncompressedSize))) continue;
    // yauzl checks sizes but not checksums; a CRC mismatch means corrupt data.
    let crc = 0;
    for await (const chunk of invalidOnError<Buffer>(await orInvalid(zip.openReadStreamPromise(entry)))) {
      crc = zlib.crc32(chunk, crc);
      await writer.write(chunk);
    }
    if (crc !== entry.crc32) throw invalid(`Archive entry ${quote(name)} is corrupt (CRC-32 mismatch).`);
  }
}

/** Zip has no entry types: a trailing '/' means folder, and Unix tools store the file type in the attributes. */
function zipEntryKind(entry: yauzl.Entry, name: string): EntryKind {
  const fileType = (entry.externalFileAttributes >>> 16) & S_IFMT;
  if (fileType === S_IFLNK) throw unsafe(name, 'is a symbolic link; only files and folders are allowed');
  if (fileType !== 0 && fileType !== S_IFREG && fileType !== S_IFDIR) {
    throw unsafe(name, 'is a special file (device, FIFO or socket); only files and folders are allowed');
  }
  return name.endsWith('/') ? 'dir' : 'file';
}

// ---------------------------------------------------------------------------------------------
// tar

async function extractTar(file: string, gzipped: boolean, writer: SafeWriter, limits: ArchiveLimits): Promise<void> {
  // We inflate ourselves, as a stream with back-pressure: a gzip bomb is stopped by the byte
  // limits after a few chunks instead of being inflated in one go.
  // The pipeline callback can ignore errors: they also destroy the gunzip stream we iterate.
  const input = createReadStream(file);
  const source: Readable = gzipped ? pipelineCallback(input, zlib.createGunzip(), () => {}) : input;
  const streamLimit = limits.maxTotalBytes + limits.maxEntries * TAR_OVERHEAD_PER_ENTRY;
  for await (const event of tarEvents(invalidOnError<Buffer>(source), streamLimit)) {
    if (Buffer.isBuffer(event)) await writer.write(event);
    else await writer.begin(event.path, tarEntryKind(event), event.size);
  }
}

function tarEntryKind(entry: ReadEntry): EntryKind {
  if (entry.type === 'File' || entry.type === 'OldFile') return 'file';
  if (entry.type === 'Directory') return 'dir';
  const what = TAR_REJECTED_TYPES[entry.type] ?? `an unsupported entry type (${entry.type})`;
  throw unsafe(entry.path, `is ${what}; only files and folders are allowed`);
}

/**
 * Runs node-tar's parser (header checksums, pax and GNU long names, global pax headers are
 * consumed and tolerated) over `source` and yields, in order, each entry followed by its data
 * chunks. The parser is fed one chunk at a time and everything it emits for that chunk is
 * handed out before the next one is read, so memory stays bounded and the consumer's awaits
 * pace the whole pipeline. node-tar itself never touches the filesystem here.
 */
async function* tarEvents(source: AsyncIterable<Buffer>, streamLimit: number): AsyncGenerator<ReadEntry | Buffer> {
  const pending: (ReadEntry | Buffer)[] = [];
  let failure = null as Error | null;
  let sawEnd = false;
  // strict turns node-tar's warnings (bad checksum, truncation...) into errors. zstd is off
  // because we only accept the formats we detected; a nested gzip stream would still be
  // inflated by node-tar, bounded by its decompression-ratio guard and by our byte limits.
  const parser = new Parser({ strict: true, zstd: false });
  parser.on('entry', (entry: ReadEntry) => {
    pending.push(entry);
    entry.on('data', (chunk: Buffer) => pending.push(chunk));
  });
  // Entry types node-tar does not know (and oversized pax headers) come here; tarEntryKind rejects them.
  parser.on('ignoredEntry', (entry: ReadEntry) => pending.push(entry));
  parser.on('error', (err: Error) => (failure ??= err));
  parser.on('eof', () => (sawEnd = true));

  let streamBytes = 0;
  for await (const chunk of source) {
    streamBytes += chunk.length;
    if (streamBytes > streamLimit) throw tooLarge(`The tar stream expands to more than ${streamLimit} bytes.`);
    // After the end-of-archive marker the rest is padding; it is still read (and counted) so
    // that gunzip verifies its checksum, but the parser would only buffer it.
    if (sawEnd) continue;
    parser.write(chunk);
    if (failure) throw invalid(`The tar archive is corrupt: ${failure.message}`);
    yield* pending.splice(0);
  }
  if (!sawEnd) throw invalid('The tar archive is truncated: the end-of-archive marker is missing.');
}

// ---------------------------------------------------------------------------------------------
// creating archives

/** Streams every regular file under `srcDir` into `out` as a gzipped tar (see listFiles). */
export async function createTarGz(srcDir: string, out: NodeJS.WritableStream): Promise<void> {
  const files = await listFiles(srcDir);
  // portable: no owner names or ids; strict: a file that vanishes fails the download instead
  // of silently leaving a hole in it.
  const pack = new Pack({ cwd: srcDir, gzip: true, portable: true, strict: true, linkCache: new NoHardLinks() });
  for (const file of files) pack.add(file);
  pack.end();
  await pipeline(pack, out);
}

/** Streams every regular file under `srcDir` into `out` as a zip (see listFiles). */
export async function createZip(srcDir: string, out: NodeJS.WritableStream): Promise<void> {
  const files = await listFiles(srcDir);
  const zip = new ZipWriter();
  const output = zip.outputStream as Readable;
  // yazl reports read failures on the ZipFile, not on its output stream.
  zip.on('error', (err: Error) => output.destroy(err));
  for (const file of files) zip.addFile(path.join(srcDir, file), file);
  zip.end();
  await pipeline(output, out);
}

/**
 * node-tar stores a second path to an inode it already packed as a hard-link entry, which
 * extractArchive refuses; a link cache that never remembers packs every path as a plain file.
 */
class NoHardLinks extends Map<`${number}:${number}`, string> {
  override set(): this {
    return this;
  }
}

/**
 * Regular files under `root` as sorted relative '/'-separated paths. Symlinks (to files or
 * folders) and special files are left out, so an archive never carries anything from outside.
 * Folders are implied by the file paths, so empty folders are not reproduced.
 */
async function listFiles(root: string): Promise<string[]> {
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'))
    .sort();
}

// ---------------------------------------------------------------------------------------------
// errors

function invalid(message: string): GraftError {
  return new UnprocessableError('archive_invalid', message);
}

function unsafe(name: string, why: string): GraftError {
  return new UnprocessableError('archive_unsafe_entry', `Archive entry ${quote(name)} ${why}.`);
}

function tooLarge(message: string): GraftError {
  return new GraftError('archive_too_large', message, { statusCode: 413 });
}

function tooManyEntries(limits: ArchiveLimits): GraftError {
  return new GraftError('archive_too_many_entries', `The archive has more than ${limits.maxEntries} entries.`, { statusCode: 413 });
}

function quote(name: string): string {
  return JSON.stringify(name.length > MAX_QUOTED_NAME ? `${name.slice(0, MAX_QUOTED_NAME)}...` : name);
}

/** Failures while reading the archive itself (bad zip structure, bad deflate data) are the upload's fault. */
async function orInvalid<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw invalid(`The archive is corrupt or truncated (${(err as Error).message}).`);
  }
}

/**
 * Like orInvalid, for a stream of archive data. Only the source's own errors are translated:
 * when the consumer throws, the generator is closed with return(), which skips the catch and
 * destroys the source.
 */
async function* invalidOnError<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    for await (const item of source) yield item;
  } catch (err) {
    throw invalid(`The archive is corrupt or truncated (${(err as Error).message}).`);
  }
}
