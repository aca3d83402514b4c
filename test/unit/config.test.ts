import { CONFIG_KEYS, loadConfig } from '../../src/config';
import { ConfigError } from '../../src/errors';

describe('config', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ PORT: 3000, DATA_DIR: './data', GRAFT_BACKEND: 'auto', WORKER_CONCURRENCY: 1, LOG_LEVEL: 'info' });
    expect(c.REDIS_URL).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('coerces numbers from the environment', () => {
    expect(loadConfig({ PORT: '8080', WORKER_CONCURRENCY: '4' })).toMatchObject({ PORT: 8080, WORKER_CONCURRENCY: 4 });
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '0'],
    ['GRAFT_BACKEND', 'gpu'],
    ['LOG_LEVEL', 'loud'],
    ['WORKER_CONCURRENCY', '0'],
    ['WORKER_CONCURRENCY', '1.5'],
    ['REDIS_URL', 'localhost:6379'],
    ['QUEUE_NAME', 'bad name'],
    ['JOB_ATTEMPTS', '0'],
  ])('rejects %s=%s with a message naming the variable', (key, value) => {
    expect(() => loadConfig({ [key]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [key]: value })).toThrow(new RegExp(`\\b${key}\\b`));
  });

  it('names every bad variable at once', () => {
    try {
      loadConfig({ PORT: 'x', GRAFT_BACKEND: 'gpu' });
      throw new Error('expected a ConfigError');
    } catch (err) {
      expect((err as Error).message).toMatch(/PORT/);
    }
  });

  it('exposes the required environment names', () => {
    for (const key of ['PORT', 'HOST', 'REDIS_URL', 'DATA_DIR', 'GRAFT_BACKEND', 'LOG_LEVEL', 'WORKER_CONCURRENCY']) expect(CONFIG_KEYS).toContain(key);
  });
});
