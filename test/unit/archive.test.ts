import { createHash } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import * as tar from 'tar';
import { GraftError } from '../../src/errors';
import {
  type ArchiveLimits,
  DEFAULT_ARCHIVE_LIMITS,
  createTarGz,
  createZip,
  detectArchiveType,
  extractArchive,
} from '../../src/storage/archive';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Small limits keep the limit tests fast. */
const LIMITS: ArchiveLimits = { maxTotalBytes: 10 * MiB, maxEntries: 50, maxEntryBytes: 4 * MiB };
const UNSAFE = 'archive_unsafe_entry';
const INVALID = 'archive_invalid';
const TOO_LARGE = 'archive_too_large';
const TOO_MANY = 'archive_too_many_entries';
/** The name attacks try to create: unique, so a leftover can never be confused with anything else. */
const EVIL = `graft-archive-evil-${process.pid}`;
const TMP_EVIL = path.join(os.tmpdir(), EVIL);

/**
 * root/
 *   archives/          the archives under test
 *   outside/keep.txt   what symlink and hard-link attacks aim at
 *   a/b/dest-N/        extraction folders: '../', '../../' and '../../../' all land inside root
 */
let root: string;
let archives: string;
let outside: string;
let sandbox: string;
let counter = 0;

beforeAll(async () => {
  root = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'graft-archive-')));
  archives = path.join(root, 'archives');
  outside = path.join(root, 'outside');
  sandbox = path.join(root, 'a', 'b');
  await Promise.all([archives, outside, sandbox].map((dir) => fs.mkdir(dir, { recursive: true })));
  await fs.writeFile(path.join(outside, 'keep.txt'), 'precious');
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
  await fs.rm(TMP_EVIL, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// helpers

async function newDest(): Promise<string> {
  const dest = path.join(sandbox, `dest-${++counter}`);
  await fs.mkdir(dest);
  return dest;
}

async function writeArchive(name: string, data: Buffer): Promise<string> {
  const file = path.join(archives, `${++counter}-${name}`);
  await fs.writeFile(file, data);
  return file;
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

/** Everything under root except `dest`: path, type, link target and content hash. */
async function snapshot(dest: string): Promise<string[]> {
  const lines: string[] = [];
  for (const entry of await fs.readdir(root, { recursive: true, withFileTypes: true })) {
    const full = path.join(entry.parentPath, entry.name);
    if (full === dest || full.startsWith(dest + path.sep)) continue;
    const rel = path.relative(root, full);
    if (entry.isSymbolicLink()) lines.push(`${rel} -> ${await fs.readlink(full)}`);
    else if (entry.isFile()) lines.push(`${rel} ${createHash('sha256').update(await fs.readFile(full)).digest('hex')}`);
    else lines.push(`${rel} ${entry.isDirectory() ? 'dir' : 'special'}`);
  }
  return lines.sort();
}

/**
 * Extracts `archive` expecting a GraftError with `code`, and checks that nothing changed outside
 * the extraction folder, including the places named by `targets` (resolved like the attack would).
 */
async function expectRejected(
  archive: string,
  code: string,
  opts: { targets?: string[]; limits?: ArchiveLimits; dest?: string } = {},
): Promise<GraftError> {
  const dest = opts.dest ?? (await newDest());
  const before = await snapshot(dest);
  const err = await extractArchive(archive, dest, opts.limits ?? LIMITS).then(
    () => {
      throw new Error(`extracting ${path.basename(archive)} succeeded, expected ${code}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GraftError);
  expect((err as GraftError).code).toBe(code);
  expect(await snapshot(dest)).toEqual(before);
  for (const target of [...(opts.targets ?? []), TMP_EVIL, path.join(root, EVIL), path.join(outside, EVIL)]) {
    expect(await exists(path.resolve(dest, target))).toBe(false);
  }
  await fs.rm(dest, { recursive: true, force: true });
  return err as GraftError;
}

/** Relative paths and contents of every file under `dir`. */
async function readTree(dir: string): Promise<Record<string, string>> {
  const tree: Record<string, string> = {};
  for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isDirectory()) continue;
    const full = path.join(entry.parentPath, entry.name);
    const rel = path.relative(dir, full).split(path.sep).join('/');
    tree[rel] = entry.isFile() ? (await fs.readFile(full)).toString('base64') : 'not a regular file';
  }
  return tree;
}

/** Deterministic incompressible bytes. */
function noise(length: number, seed = 1): Buffer {
  const out = Buffer.alloc(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

// --- tar, written by hand so that any entry type and name can be produced -------------------

interface TarEntrySpec {
  name: string;
  /** ustar typeflag: '0' file, '1' hard link, '2' symlink, '3' char dev, '4' block dev, '5' dir, '6' FIFO, 'x'/'g' pax, 'L' GNU long name. */
  type?: string;
  data?: string | Buffer;
  linkname?: string;
}

function tarHeader(name: string, type: string, size: number, linkname = ''): Buffer {
  const header = Buffer.alloc(512);
  const octal = (value: number, offset: number, width: number) =>
    header.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, 'latin1');
  header.write(name, 0, 100, 'utf8');
  octal(0o644, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(size, 124, 12);
  octal(0, 136, 12);
  header.write(type, 156, 'latin1');
  header.write(linkname, 157, 100, 'utf8');
  header.write('ustar\u000000', 257, 'latin1');
  header.fill(' ', 148, 156); // the checksum is computed with its own field as spaces
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return header;
}

function tarOf(entries: TarEntrySpec[], opts: { endMarker?: boolean } = {}): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const data = Buffer.from(entry.data ?? '');
    blocks.push(tarHeader(entry.name, entry.type ?? '0', data.length, entry.linkname), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  if (opts.endMarker ?? true) blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** A pax extended-header body: records of the form "<length> <key>=<value>\n". */
function paxRecords(records: Record<string, string>): string {
  return Object.entries(records)
    .map(([key, value]) => {
      const body = ` ${key}=${value}\n`;
      let length = Buffer.byteLength(body);
      while (String(length).length + Buffer.byteLength(body) !== length) length = String(length).length + Buffer.byteLength(body);
      return `${length}${body}`;
    })
    .join('');
}

// --- zip, written by hand so that names, sizes, checksums and attributes can lie ------------

interface ZipEntrySpec {
  name: string | Buffer;
  data?: string | Buffer;
  deflate?: boolean;
  /** General-purpose flags; bit 0 marks the entry encrypted. */
  flags?: number;
  /** Unix mode stored in the high 16 bits of the external attributes. */
  unixMode?: number;
  /** Uncompressed size to declare, when it should differ from the truth. */
  declaredSize?: number;
  crc?: number;
}

const UTF8_NAMES = 0x800;
const MADE_BY_UNIX = (3 << 8) | 20;

function zipOf(entries: ZipEntrySpec[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.isBuffer(entry.name) ? entry.name : Buffer.from(entry.name, 'utf8');
    const data = Buffer.from(entry.data ?? '');
    const stored = entry.deflate ? zlib.deflateRawSync(data) : data;
    const fields = {
      flags: (entry.flags ?? 0) | UTF8_NAMES,
      method: entry.deflate ? 8 : 0,
      crc: entry.crc ?? zlib.crc32(data),
      size: entry.declaredSize ?? data.length,
    };
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(fields.flags, 6);
    local.writeUInt16LE(fields.method, 8);
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(fields.crc, 14);
    local.writeUInt32LE(stored.length, 18);
    local.writeUInt32LE(fields.size, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(MADE_BY_UNIX, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(fields.flags, 8);
    central.writeUInt16LE(fields.method, 10);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(fields.crc, 16);
    central.writeUInt32LE(stored.length, 20);
    central.writeUInt32LE(fields.size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((entry.unixMode ?? 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, stored);
    centrals.push(central, name);
    offset += local.length + name.length + stored.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

const truncated = (archive: Buffer) => archive.subarray(0, Math.floor(archive.length / 2));
const manyFiles = (count: number) => Array.from({ length: count }, (_, i) => ({ name: `f${i}.txt`, data: 'x' }));
const deepEscape = `${'../'.repeat(30)}${TMP_EVIL.slice(1)}`;

// ---------------------------------------------------------------------------------------------
// hostile archives

interface HostileCase {
  title: string;
  archive: () => Buffer;
  code: string;
  /** Entry names as the attack means them, checked for non-existence relative to dest. */
  targets?: string[];
  limits?: ArchiveLimits;
}

const hostile: HostileCase[] = [
  // path traversal
  { title: 'zip-slip "../evil" in a zip', archive: () => zipOf([{ name: `../${EVIL}`, data: 'pwned' }]), code: UNSAFE, targets: [`../${EVIL}`] },
  { title: 'zip-slip deep enough to reach /tmp', archive: () => zipOf([{ name: deepEscape, data: 'pwned' }]), code: UNSAFE, targets: [deepEscape] },
  {
    title: '".." in the middle of a zip path',
    archive: () => zipOf([{ name: `ok/../../${EVIL}`, data: 'pwned' }]),
    code: UNSAFE,
    targets: [`ok/../../${EVIL}`],
  },
  { title: 'zip-slip "../evil" in a tar', archive: () => tarOf([{ name: `../${EVIL}`, data: 'pwned' }]), code: UNSAFE, targets: [`../${EVIL}`] },
  {
    title: 'zip-slip in a tar via a pax path',
    archive: () => tarOf([{ name: 'PaxHeader', type: 'x', data: paxRecords({ path: `../../${EVIL}` }) }, { name: 'innocent.txt', data: 'pwned' }]),
    code: UNSAFE,
    targets: [`../../${EVIL}`],
  },
  {
    title: 'zip-slip in a tar via a GNU long name',
    archive: () => tarOf([{ name: '././@LongLink', type: 'L', data: `../../../${EVIL}\0` }, { name: 'innocent.txt', data: 'pwned' }]),
    code: UNSAFE,
    targets: [`../../../${EVIL}`],
  },
  // absolute paths
  { title: 'absolute path in a zip', archive: () => zipOf([{ name: TMP_EVIL, data: 'pwned' }]), code: UNSAFE, targets: [TMP_EVIL] },
  { title: 'absolute path in a tar', archive: () => tarOf([{ name: TMP_EVIL, data: 'pwned' }]), code: UNSAFE, targets: [TMP_EVIL] },
  { title: 'Windows drive path in a zip', archive: () => zipOf([{ name: `C:/${EVIL}`, data: 'pwned' }]), code: UNSAFE },
  { title: 'Windows drive path with a backslash in a tar', archive: () => tarOf([{ name: `C:\\${EVIL}`, data: 'pwned' }]), code: UNSAFE },
  { title: 'UNC path in a zip', archive: () => zipOf([{ name: `\\\\server\\share\\${EVIL}`, data: 'pwned' }]), code: UNSAFE },
  // names that mean different things to different tools
  { title: 'backslash traversal in a zip', archive: () => zipOf([{ name: `..\\${EVIL}`, data: 'pwned' }]), code: UNSAFE, targets: [`../${EVIL}`] },
  {
    title: 'backslash traversal in a tar',
    archive: () => tarOf([{ name: `dir\\..\\..\\${EVIL}`, data: 'pwned' }]),
    code: UNSAFE,
    targets: [`../${EVIL}`],
  },
  { title: 'a path nested too deep', archive: () => zipOf([{ name: `${'d/'.repeat(40)}f.txt`, data: 'x' }]), code: UNSAFE },
  {
    title: 'a name longer than the filesystem allows',
    archive: () => tarOf([{ name: 'PaxHeader', type: 'x', data: paxRecords({ path: 'n'.repeat(300) }) }, { name: 'f', data: 'x' }]),
    code: UNSAFE,
  },
  { title: 'NUL byte in a zip name', archive: () => zipOf([{ name: `safe.txt\0../${EVIL}`, data: 'pwned' }]), code: UNSAFE, targets: [`../${EVIL}`] },
  // links and special files
  {
    title: 'zip symlink (external attributes) followed by a file through it',
    archive: () => zipOf([{ name: 'link', data: '../../../outside', unixMode: 0o120777 }, { name: `link/${EVIL}`, data: 'pwned' }]),
    code: UNSAFE,
  },
  { title: 'zip FIFO (external attributes)', archive: () => zipOf([{ name: 'fifo', unixMode: 0o010644 }]), code: UNSAFE },
  {
    title: 'tar symlink to a folder outside, then a file through it',
    archive: () => tarOf([{ name: 'link', type: '2', linkname: '../../../outside' }, { name: `link/${EVIL}`, data: 'pwned' }]),
    code: UNSAFE,
  },
  { title: 'tar symlink to an absolute path', archive: () => tarOf([{ name: 'etc', type: '2', linkname: '/etc' }]), code: UNSAFE },
  {
    title: 'tar hard link to a file outside, then a write to it',
    archive: () => tarOf([{ name: 'keep.txt', type: '1', linkname: '../../../outside/keep.txt' }, { name: 'keep.txt', data: 'pwned' }]),
    code: UNSAFE,
  },
  { title: 'tar character device', archive: () => tarOf([{ name: 'null', type: '3' }]), code: UNSAFE },
  { title: 'tar block device', archive: () => tarOf([{ name: 'sda', type: '4' }]), code: UNSAFE },
  { title: 'tar FIFO', archive: () => tarOf([{ name: 'fifo', type: '6' }]), code: UNSAFE },
  { title: 'tar entry of an unknown type', archive: () => tarOf([{ name: 'odd', type: 'Z', data: 'x' }]), code: UNSAFE },
  { title: 'tar volume label entry', archive: () => tarOf([{ name: 'label', type: 'V' }]), code: UNSAFE },
  // duplicates and conflicts
  { title: 'duplicate file names in a zip', archive: () => zipOf([{ name: 'a.txt', data: 'one' }, { name: 'a.txt', data: 'two' }]), code: UNSAFE },
  { title: 'duplicate file names in a tar', archive: () => tarOf([{ name: 'a.txt', data: 'one' }, { name: './a.txt', data: 'two' }]), code: UNSAFE },
  { title: 'a file used as a folder', archive: () => zipOf([{ name: 'a', data: 'file' }, { name: 'a/b.txt', data: 'x' }]), code: UNSAFE },
  // size and count limits
  { title: 'too many entries in a zip', archive: () => zipOf(manyFiles(LIMITS.maxEntries + 1)), code: TOO_MANY },
  { title: 'too many entries in a tar', archive: () => tarOf(manyFiles(LIMITS.maxEntries + 1)), code: TOO_MANY },
  { title: 'tar entry over the per-entry limit', archive: () => tarOf([{ name: 'big.bin', data: Buffer.alloc(LIMITS.maxEntryBytes + 1) }]), code: TOO_LARGE },
  {
    title: 'zip entry over the per-entry limit',
    archive: () => zipOf([{ name: 'big.bin', data: Buffer.alloc(LIMITS.maxEntryBytes + 1), deflate: true }]),
    code: TOO_LARGE,
  },
  {
    title: 'tar entries over the total limit',
    archive: () => tarOf(Array.from({ length: 3 }, (_, i) => ({ name: `part${i}.bin`, data: Buffer.alloc(4 * MiB) }))),
    code: TOO_LARGE,
  },
  {
    title: 'endless empty pax headers (no entries, no data) hit the tar stream limit',
    archive: () => zlib.gzipSync(Buffer.concat([...Array<Buffer>(25_000).fill(tarHeader('PaxHeader', 'x', 0)), Buffer.alloc(1024)])),
    code: TOO_LARGE,
  },
  {
    title: 'zip whose declared size lies (smaller than the data)',
    archive: () => zipOf([{ name: 'liar.bin', data: Buffer.alloc(100 * KiB), deflate: true, declaredSize: 10 }]),
    code: INVALID,
  },
  // corrupt archives
  { title: 'zip with a bad CRC', archive: () => zipOf([{ name: 'a.txt', data: 'hello', crc: 0xdeadbeef }]), code: INVALID },
  { title: 'zip with an encrypted entry', archive: () => zipOf([{ name: 'secret.txt', data: 'hello', deflate: true, flags: 0x1 }]), code: INVALID },
  { title: 'truncated zip', archive: () => truncated(zipOf([{ name: 'a.bin', data: noise(4 * KiB) }])), code: INVALID },
  {
    title: 'zip with a corrupt central directory',
    archive: () => {
      const zip = zipOf([{ name: 'a.txt', data: 'hello' }]);
      zip.writeUInt32LE(0x12345678, zip.indexOf(Buffer.from('PK\x01\x02', 'latin1')));
      return zip;
    },
    code: INVALID,
  },
  { title: 'truncated tar.gz', archive: () => truncated(zlib.gzipSync(tarOf([{ name: 'a.bin', data: noise(64 * KiB) }]))), code: INVALID },
  {
    title: 'tar.gz missing its gzip trailer',
    archive: () => {
      const gz = zlib.gzipSync(tarOf([{ name: 'a.txt', data: 'hello' }]));
      return gz.subarray(0, gz.length - 8);
    },
    code: INVALID,
  },
  { title: 'tar truncated in the middle of an entry', archive: () => truncated(tarOf([{ name: 'a.bin', data: noise(4 * KiB) }])), code: INVALID },
  { title: 'tar without its end-of-archive marker', archive: () => tarOf([{ name: 'a.txt', data: 'hello' }], { endMarker: false }), code: INVALID },
  {
    title: 'tar header with a bad checksum',
    archive: () => {
      const tarball = tarOf([{ name: 'a.txt', data: 'hello' }]);
      tarball.write('b', 0, 'latin1');
      return tarball;
    },
    code: INVALID,
  },
  { title: 'gzip that is not a tar inside', archive: () => zlib.gzipSync(Buffer.from('just some text, not a tar archive\n'.repeat(100))), code: INVALID },
  { title: 'random bytes', archive: () => Buffer.concat([Buffer.from([0]), noise(10 * KiB)]), code: INVALID },
  { title: 'an empty file', archive: () => Buffer.alloc(0), code: INVALID },
];

describe('extractArchive rejects hostile archives without touching anything outside dest', () => {
  test.each(hostile)('$title', async ({ archive, code, targets, limits }) => {
    await expectRejected(await writeArchive('hostile', archive()), code, { targets, limits });
  });

  test('the rejection names the entry and the reason', async () => {
    const err = await expectRejected(await writeArchive('slip.zip', zipOf([{ name: `../${EVIL}`, data: 'x' }])), UNSAFE);
    expect(err.statusCode).toBe(422);
    expect(err.message).toContain(`"../${EVIL}"`);
    expect(err.message).toContain('".."');
  });

  test('encrypted entries are reported as such', async () => {
    const err = await expectRejected(await writeArchive('enc.zip', zipOf([{ name: 'secret.txt', data: 'x', deflate: true, flags: 0x1 }])), INVALID);
    expect(err.message).toMatch(/encrypted/);
  });

  test('a gzip bomb (200 MB of zeros in a few hundred KB) is refused at the total limit', async () => {
    const bomb = path.join(archives, 'bomb.tar.gz');
    const size = 200 * MiB;
    async function* tarStream() {
      yield tarHeader('zeros.bin', '0', size);
      const zeros = Buffer.alloc(MiB);
      for (let left = size; left > 0; left -= zeros.length) yield zeros;
      yield Buffer.alloc(1024);
    }
    await pipeline(tarStream(), zlib.createGzip(), createWriteStream(bomb));
    expect((await fs.stat(bomb)).size).toBeLessThan(MiB);
    const limits = { ...LIMITS, maxEntryBytes: DEFAULT_ARCHIVE_LIMITS.maxEntryBytes };
    const err = await expectRejected(bomb, TOO_LARGE, { limits });
    expect(err.statusCode).toBe(413);
  });

  test('a bomb spread over many entries stops at the total limit having written at most that much', async () => {
    const parts = Array.from({ length: 40 }, (_, i) => ({ name: `z${i}.bin`, data: Buffer.alloc(MiB) }));
    const bomb = await writeArchive('spread.tar.gz', zlib.gzipSync(tarOf(parts)));
    const dest = await newDest();
    const before = await snapshot(dest);
    await expect(extractArchive(bomb, dest, LIMITS)).rejects.toMatchObject({ code: TOO_LARGE });
    let written = 0;
    for (const name of await fs.readdir(dest)) written += (await fs.stat(path.join(dest, name))).size;
    expect(written).toBeLessThanOrEqual(LIMITS.maxTotalBytes);
    expect(await snapshot(dest)).toEqual(before);
  });

  test('a symlink already inside dest is never followed', async () => {
    const dest = await newDest();
    await fs.symlink(outside, path.join(dest, 'link'));
    const archive = await writeArchive('through.tar', tarOf([{ name: `link/${EVIL}`, data: 'pwned' }]));
    const err = await expectRejected(archive, UNSAFE, { dest });
    expect(err.message).toMatch(/symbolic link/);
  });
});

// ---------------------------------------------------------------------------------------------
// happy paths

describe('round trips', () => {
  let src: string;
  let expected: Record<string, string>;
  const longPath = `long/${'x'.repeat(120)}/${'y'.repeat(120)}.txt`;

  beforeAll(async () => {
    src = path.join(root, 'src');
    const files: Record<string, string | Buffer> = {
      'a.txt': 'hello\n',
      'empty.bin': '',
      'nested/deeper/data.bin': noise(300 * KiB),
      'nested/ünïcödé name.txt': 'unicode',
      [longPath]: 'a path too long for a plain ustar header',
    };
    for (const [name, data] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(src, name)), { recursive: true });
      await fs.writeFile(path.join(src, name), data);
    }
    // A hard link is packed as a second plain file; symlinks and empty folders are left out.
    await fs.link(path.join(src, 'a.txt'), path.join(src, 'nested', 'hard.txt'));
    await fs.symlink(outside, path.join(src, 'link-to-outside'));
    await fs.symlink('a.txt', path.join(src, 'link.txt'));
    await fs.mkdir(path.join(src, 'empty-folder'));
    expected = await readTree(src);
    delete expected['link-to-outside'];
    delete expected['link.txt'];
    expected['nested/hard.txt'] = expected['a.txt'];
  });

  test.each([
    ['tar.gz', createTarGz],
    ['zip', createZip],
  ] as const)('%s: create then extract reproduces every regular file byte for byte', async (type, create) => {
    const file = path.join(archives, `roundtrip.${type}`);
    await create(src, createWriteStream(file));
    expect(await detectArchiveType(file)).toBe(type);
    const dest = await newDest();
    const result = await extractArchive(file, dest, LIMITS);
    expect(await readTree(dest)).toEqual(expected);
    expect(result.files).toBe(Object.keys(expected).length);
    expect(result.bytes).toBe(Object.values(expected).reduce((sum, b64) => sum + Buffer.from(b64, 'base64').length, 0));
  });

  test.each([
    ['tar.gz', createTarGz],
    ['zip', createZip],
  ] as const)('%s: an empty folder makes an archive that extracts to nothing', async (type, create) => {
    const empty = path.join(root, `empty-src-${type}`);
    await fs.mkdir(empty);
    const file = path.join(archives, `empty.${type}`);
    await create(empty, createWriteStream(file));
    expect(await detectArchiveType(file)).toBe(type);
    const dest = await newDest();
    expect(await extractArchive(file, dest, LIMITS)).toEqual({ files: 0, bytes: 0 });
    expect(await fs.readdir(dest)).toEqual([]);
  });

  test('a plain tar made by node-tar, with "./" prefixes and folder entries, extracts', async () => {
    const plain = path.join(root, 'plain-src');
    await fs.mkdir(path.join(plain, 'sub'), { recursive: true });
    await fs.writeFile(path.join(plain, 'one.txt'), '1');
    await fs.writeFile(path.join(plain, 'sub', 'two.txt'), '22');
    const file = path.join(archives, 'plain.tar');
    await tar.c({ cwd: plain, file, portable: true }, ['.']);
    expect(await detectArchiveType(file)).toBe('tar');
    const dest = await newDest();
    expect(await extractArchive(file, dest, LIMITS)).toEqual({ files: 2, bytes: 3 });
    expect(await readTree(dest)).toEqual(await readTree(plain));
  });
});

describe('harmless metadata is skipped', () => {
  test('__MACOSX folders and ._ AppleDouble files in a zip', async () => {
    const archive = await writeArchive(
      'mac.zip',
      zipOf([
        { name: 'photos/', unixMode: 0o040755 },
        { name: 'photos/cat.png', data: 'meow' },
        { name: '__MACOSX/', unixMode: 0o040755 },
        { name: '__MACOSX/photos/._cat.png', data: 'resource fork' },
        { name: 'photos/._cat.png', data: 'resource fork' },
      ]),
    );
    const dest = await newDest();
    expect(await extractArchive(archive, dest, LIMITS)).toEqual({ files: 1, bytes: 4 });
    expect(await readTree(dest)).toEqual({ 'photos/cat.png': Buffer.from('meow').toString('base64') });
  });

  test('pax global headers and ._ files in a tar', async () => {
    const archive = await writeArchive(
      'mac.tar',
      tarOf([
        { name: 'pax_global_header', type: 'g', data: paxRecords({ comment: 'made on a Mac' }) },
        { name: './', type: '5' },
        { name: './._data.txt', data: 'resource fork' },
        { name: './data.txt', data: 'data' },
      ]),
    );
    const dest = await newDest();
    expect(await extractArchive(archive, dest, LIMITS)).toEqual({ files: 1, bytes: 4 });
    expect(await readTree(dest)).toEqual({ 'data.txt': Buffer.from('data').toString('base64') });
  });
});

describe('detectArchiveType', () => {
  test.each([
    ['a zip', () => zipOf([{ name: 'a.txt', data: 'x' }]), 'zip'],
    ['an empty zip', () => zipOf([]), 'zip'],
    ['a gzip stream', () => zlib.gzipSync(tarOf([{ name: 'a.txt', data: 'x' }])), 'tar.gz'],
    ['a ustar tar', () => tarOf([{ name: 'a.txt', data: 'x' }]), 'tar'],
    ['text', () => Buffer.from('name,label\ncat.png,cat\n'), null],
    ['an empty file', () => Buffer.alloc(0), null],
  ] as const)('%s', async (_, build, type) => {
    expect(await detectArchiveType(await writeArchive('detect.zip', build()))).toBe(type);
  });
});
