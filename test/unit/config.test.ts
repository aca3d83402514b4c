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

  it.each(['0.0.0.0', '::', '192.168.1.10', 'example.com', '128.0.0.1'])('refuses GRAFT_AUTH=off on the non-loopback HOST %s, naming GRAFT_AUTH and HOST', (host) => {
    expect(() => loadConfig({ GRAFT_AUTH: 'off', HOST: host })).toThrow(ConfigError);
    expect(() => loadConfig({ GRAFT_AUTH: 'off', HOST: host })).toThrow(/GRAFT_AUTH.*HOST/);
  });

  it.each(['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1'])('allows GRAFT_AUTH=off on the loopback HOST %s', (host) => {
    expect(loadConfig({ GRAFT_AUTH: 'off', HOST: host }).GRAFT_AUTH).toBe('off');
  });

  it('requires API keys by default, on any HOST', () => {
    expect(loadConfig({}).GRAFT_AUTH).toBe('required');
    expect(loadConfig({ HOST: '0.0.0.0' }).GRAFT_AUTH).toBe('required');
    expect(() => loadConfig({ GRAFT_ADMIN_KEY: 'x'.repeat(40), GRAFT_ADMIN_KEY_FILE: '/k' })).toThrow(/GRAFT_ADMIN_KEY/);
    expect(() => loadConfig({ GRAFT_ADMIN_KEY: 'short' })).toThrow(/GRAFT_ADMIN_KEY/);
  });

  it('exposes the required environment names', () => {
    for (const key of ['PORT', 'HOST', 'REDIS_URL', 'DATA_DIR', 'GRAFT_BACKEND', 'LOG_LEVEL', 'WORKER_CONCURRENCY']) expect(CONFIG_KEYS).toContain(key);
  });
});
