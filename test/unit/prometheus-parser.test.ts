import { Counter, Histogram, Registry } from 'prom-client';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus';

/** The strict parser the metrics tests rely on must itself reject what Prometheus would. */
describe('Prometheus text parser', () => {
  it('accepts what prom-client writes, escapes included', async () => {
    const registry = new Registry();
    const c = new Counter({ name: 'x_total', help: 'h', labelNames: ['a'], registers: [registry] });
    c.inc({ a: 'quote " backslash \\ newline \n' }, 3);
    const h = new Histogram({ name: 'd_seconds', help: 'h', buckets: [1, 2], registers: [registry] });
    h.observe(1.5);
    const families = parsePrometheusText(await registry.metrics());
    expect(sampleValue(families, 'x_total', { a: 'quote " backslash \\ newline \n' })).toBe(3);
    expect(sampleValue(families, 'd_seconds_bucket', { le: '2' })).toBe(1);
    expect(sampleValue(families, 'd_seconds_bucket', { le: '1' })).toBe(0);
  });

  it('reads the special values case-insensitively, as Prometheus (Go ParseFloat) does', () => {
    const families = parsePrometheusText('# TYPE g gauge\ng{a="1"} Nan\ng{a="2"} +Inf\ng{a="3"} -inf\n');
    expect(sampleValue(families, 'g', { a: '1' })).toBeNaN();
    expect(sampleValue(families, 'g', { a: '2' })).toBe(Infinity);
    expect(sampleValue(families, 'g', { a: '3' })).toBe(-Infinity);
  });

  it.each([
    ['a sample without TYPE', 'foo 1\n'],
    ['a bad metric name', '# TYPE 1foo counter\n1foo 1\n'],
    ['an unterminated label', '# TYPE foo gauge\nfoo{a="x} 1\n'],
    ['a bad escape', '# TYPE foo gauge\nfoo{a="\\t"} 1\n'],
    ['a bad value', '# TYPE foo gauge\nfoo 1,5\n'],
    ['a duplicate series', '# TYPE foo gauge\nfoo{a="1"} 1\nfoo{a="1"} 2\n'],
    ['a split family', '# TYPE foo gauge\nfoo 1\n# TYPE bar gauge\nbar 1\nfoo{a="b"} 2\n'],
    ['a negative counter', '# TYPE foo counter\nfoo -1\n'],
    ['non-cumulative buckets', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'],
    ['+Inf bucket != count', '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 2\n'],
    ['no final newline', '# TYPE foo gauge\nfoo 1'],
  ])('rejects %s', (_what, text) => {
    expect(() => parsePrometheusText(text)).toThrow();
  });
});
