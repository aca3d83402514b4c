import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CONFIG_KEYS, ConfigSchema, loadConfig } from '../../src/config';

/** Every configuration variable has a row in README's configuration table, with its real default. */
describe('README configuration table', () => {
  const readme = readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration'));
  const rows = new Map(
    [...section.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|/gm)].map((m) => [m[1], m[2].trim()]),
  );
  const defaults = loadConfig({});

  it.each(CONFIG_KEYS)('documents %s', (key) => {
    expect(rows.has(key)).toBe(true);
    const value = defaults[key];
    if (value !== undefined) expect(rows.get(key)).toContain(`\`${String(value)}\``);
    expect((ConfigSchema.properties[key] as { description?: string }).description?.length).toBeGreaterThan(10);
  });

  it('documents nothing that is not a variable', () => {
    for (const key of rows.keys()) expect(CONFIG_KEYS).toContain(key);
  });
});
