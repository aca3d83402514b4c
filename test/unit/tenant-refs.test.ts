import { DataLayout, parseRef } from '../../src/storage/layout';
import { REF_PATTERN } from '../../src/storage/names';
import { jobTenant, outputReservationName, refersTo } from '../../src/tenants/refs';

/** How names in a spec resolve per tenant (src/storage/layout.ts, src/tenants/refs.ts). */
describe('references to datasets and checkpoints', () => {
  it('resolve `<name>`, `<own tenant>/<name>` and `public/<name>`; any other namespace is nothing (reported as missing)', () => {
    expect(parseRef('mnist', 'acme')).toEqual({ tenant: 'acme', name: 'mnist' });
    expect(parseRef('acme/mnist', 'acme')).toEqual({ tenant: 'acme', name: 'mnist' });
    expect(parseRef('public/mnist', 'acme')).toEqual({ tenant: 'public', name: 'mnist' });
    expect(parseRef('beta/mnist', 'acme')).toBeNull();
    expect(parseRef('default/mnist', 'acme')).toBeNull();
    expect(parseRef('public/a/b', 'acme')).toBeNull();
    const layout = new DataLayout('/data', 'acme');
    expect(layout.resolveRef('public/enc')?.layout.checkpointDir('enc')).toBe('/data/tenants/public/checkpoints/enc');
    expect(layout.resolveRef('enc')?.layout.datasetDir('enc')).toBe('/data/tenants/acme/datasets/enc');
    expect(() => layout.checkpointRef('beta/enc')).toThrow(expect.objectContaining({ code: 'checkpoint_not_found', message: 'There is no checkpoint "beta/enc"; GET /v1/checkpoints lists them.' }));
    expect(() => layout.datasetRef('beta/mnist')).toThrow(expect.objectContaining({ code: 'dataset_not_found', statusCode: 404 }));
  });

  it('the spec schema accepts a namespace prefix only in the reference form', () => {
    const re = new RegExp(REF_PATTERN);
    for (const ok of ['mnist', 'public/mnist', 'acme-2/m.v2_x']) expect(re.test(ok)).toBe(true);
    for (const bad of ['public/', '/mnist', 'a/b/c', 'Public/mnist', 'public/../x', 'public/.hidden', `public/${'x'.repeat(65)}`]) expect(re.test(bad)).toBe(false);
  });

  it('who uses an object: a job of its tenant by bare name, any tenant through public/<name>', () => {
    expect(refersTo('mnist', 'acme', 'acme', 'mnist')).toBe(true);
    expect(refersTo('mnist', 'beta', 'acme', 'mnist')).toBe(false);
    expect(refersTo('public/mnist', 'beta', 'public', 'mnist')).toBe(true);
    expect(refersTo('acme/mnist', 'beta', 'acme', 'mnist')).toBe(false);
    expect(refersTo(undefined, 'acme', 'acme', 'mnist')).toBe(false);
  });

  it('job records without a tenant are the default tenant’s; output reservations are per tenant', () => {
    expect(jobTenant({})).toBe('default');
    expect(jobTenant({ tenant: 'acme' })).toBe('acme');
    expect(outputReservationName('default', 'out')).toBe('out');
    expect(outputReservationName('acme', 'out')).toBe('acme/out');
    expect(outputReservationName('acme', 'out')).not.toBe(outputReservationName('beta', 'out'));
  });
});
