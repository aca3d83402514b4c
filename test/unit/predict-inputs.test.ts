import { NPY_TYPE, rowsFromFloat32, rowsFromNpy } from '../../src/api/binary-instances';
import { packInstances } from '../../src/api/routes/predict';
import { classify } from '../../src/inference/classify';
import { checkRows } from '../../workers/inference/instances';

/** Pure parts of predictions: packing JSON instances, binary bodies, ranking classes, checking rows. */

function npy(descr: string, shape: number[], data: Buffer, { fortran = false, version = 1 } = {}): Buffer {
  const dict = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const prefix = version === 1 ? 10 : 12;
  const header = dict.padEnd(64 * Math.ceil((prefix + dict.length + 1) / 64) - prefix - 1, ' ') + '\n';
  const length = version === 1 ? Buffer.from(Uint16Array.of(header.length).buffer) : Buffer.from(Uint32Array.of(header.length).buffer);
  return Buffer.concat([Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]), length, Buffer.from(header, 'latin1'), data]);
}

describe('packInstances', () => {
  it('packs flat and nested instances of finite numbers into one float32 block with their dims', () => {
    expect(packInstances([[1, 2, 3], [4, 5, 6]])).toEqual({ kind: 'rows', x: Float32Array.of(1, 2, 3, 4, 5, 6), count: 2, dims: [3] });
    const nested = packInstances([[[[0.5], [1]], [[2], [3]]]]);
    expect(nested).toEqual({ kind: 'rows', x: Float32Array.of(0.5, 1, 2, 3), count: 1, dims: [2, 2, 1] });
  });

  it('leaves ragged, mixed, non-numeric and non-finite instances to the inference process (which names the fault)', () => {
    expect(packInstances([[1, 2], [1, 2, 3]])).toBeNull();
    expect(packInstances([[[1], [2]], [1, 2]])).toBeNull();
    expect(packInstances([[1, '2']])).toBeNull();
    expect(packInstances([[1, null]])).toBeNull();
    expect(packInstances([[[1], [2, 3]]])).toBeNull();
    expect(packInstances([[]])).toBeNull();
  });
});

describe('binary bodies', () => {
  const values = Float32Array.of(0.25, -1, 3.5, 0, 7, 8);

  it('reads raw little-endian float32, even from an unaligned buffer', () => {
    const bytes = Buffer.concat([Buffer.alloc(1), Buffer.from(values.buffer)]).subarray(1);
    expect(rowsFromFloat32(bytes, 10)).toEqual({ kind: 'rows', x: values, count: null, dims: null, maxCount: 10 });
    expect(() => rowsFromFloat32(Buffer.alloc(7), 10)).toThrow(/4 bytes each/);
    expect(() => rowsFromFloat32(Buffer.alloc(0), 10)).toThrow(/float32/);
  });

  it('reads .npy files of float32 and float64, versions 1 and 2, with the instance count and dims from the shape', () => {
    expect(rowsFromNpy(npy('<f4', [2, 3], Buffer.from(values.buffer)))).toEqual({ kind: 'rows', x: values, count: 2, dims: [3] });
    expect(rowsFromNpy(npy('<f8', [1, 3, 2, 1], Buffer.from(Float64Array.from(values).buffer), { version: 2 }))).toEqual({ kind: 'rows', x: values, count: 1, dims: [3, 2, 1] });
    expect(rowsFromNpy(npy('<f4', [6], Buffer.from(values.buffer)))).toMatchObject({ count: 1, dims: [6] });
  });

  it('refuses what is not a C-ordered float .npy of the size its header says, saying what to send', () => {
    expect(() => rowsFromNpy(Buffer.from('{"instances": []}'))).toThrow(/np\.save/);
    expect(() => rowsFromNpy(npy('<i8', [1, 6], Buffer.alloc(48)))).toThrow(/astype\('<f4'\)/);
    expect(() => rowsFromNpy(npy('>f4', [1, 6], Buffer.alloc(24)))).toThrow(/dtype >f4/);
    expect(() => rowsFromNpy(npy('<f4', [2, 3], Buffer.alloc(24), { fortran: true }))).toThrow(/Fortran/);
    expect(() => rowsFromNpy(npy('<f4', [2, 3], Buffer.alloc(20)))).toThrow(/needs 24 bytes/);
    expect(() => rowsFromNpy(npy('<f4', [0, 3], Buffer.alloc(0)))).toThrow(/shape/);
    expect(NPY_TYPE).toBe('application/x-npy');
  });
});

describe('classify', () => {
  it('ranks classes by probability, ties to the lower index, k clipped to the classes', () => {
    const rows = Float32Array.of(0.1, 0.6, 0.3, /* row 2 */ 0.4, 0.2, 0.4);
    const [a, b] = classify(rows, 3, 2, ['x', 'y', 'z'], 2);
    expect(a.label).toBe('y');
    expect(a.top.map((t) => t.label)).toEqual(['y', 'z']);
    expect(b.top.map((t) => t.label)).toEqual(['x', 'z']);
    expect(classify(rows, 3, 1, ['x', 'y', 'z'], 10)[0].top).toHaveLength(3);
  });

  it('gives the same ranking by selection (few classes asked) and by sorting (many)', () => {
    const row = Float32Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) / 100);
    const labels = Array.from({ length: 100 }, (_, i) => `c${i}`);
    const few = classify(row, 100, 1, labels, 16)[0].top.map((t) => t.label);
    const many = classify(row, 100, 1, labels, 40)[0].top.map((t) => t.label);
    expect(many.slice(0, 16)).toEqual(few);
    expect(few[0]).toBe('c27'); // 27 * 37 % 100 = 99
  });
});

describe('checkRows', () => {
  const shape = [2, 2, 1];
  it('takes nested, flat and raw rows of the input shape', () => {
    expect(checkRows(new Float32Array(8), { count: 2, dims: [2, 2, 1] }, shape)).toEqual({ ok: true, count: 2 });
    expect(checkRows(new Float32Array(8), { count: 2, dims: [4] }, shape)).toEqual({ ok: true, count: 2 });
    expect(checkRows(new Float32Array(12), { count: null, dims: null }, shape)).toEqual({ ok: true, count: 3 });
  });

  it('names the fault: wrong dims, not whole instances, too many, a non-finite value', () => {
    expect(checkRows(new Float32Array(8), { count: 2, dims: [2, 4] }, shape)).toMatchObject({ ok: false, error: { code: 'instance_shape_mismatch', param: '/instances/0' } });
    expect(checkRows(new Float32Array(6), { count: null, dims: null }, shape)).toMatchObject({ ok: false, error: { code: 'instance_shape_mismatch', param: '/instances', statusCode: 422 } });
    expect(checkRows(new Float32Array(12), { count: null, dims: null, maxCount: 2 }, shape)).toMatchObject({ ok: false, error: { code: 'too_many_instances', statusCode: 413 } });
    const x = new Float32Array(12);
    x[9] = Number.NaN;
    expect(checkRows(x, { count: 3, dims: [4] }, shape)).toMatchObject({ ok: false, error: { code: 'invalid_instance', param: '/instances/2', statusCode: 400 } });
  });
});
