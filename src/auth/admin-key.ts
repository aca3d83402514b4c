import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config';
import { ConfigError } from '../errors';
import { generateApiKey, hashApiKey } from './api-key';

/** Where the API writes the bootstrap admin key when none is configured (and the CLI looks for it). */
export function adminKeyPath(dataDir: string): string {
  return path.join(dataDir, '.secrets', 'admin.key');
}

export interface AdminKey {
  /** sha256 of the key: all the API keeps in memory. */
  hash: string;
  /** Where it came from, for the start-up log line (never the key itself). */
  source: 'GRAFT_ADMIN_KEY' | 'GRAFT_ADMIN_KEY_FILE' | 'generated';
  /** The file holding it (GRAFT_ADMIN_KEY_FILE or the generated one). */
  file: string | null;
}

/**
 * The bootstrap admin key of the default tenant (issue 11): GRAFT_ADMIN_KEY, else the content of
 * GRAFT_ADMIN_KEY_FILE, else (GRAFT_AUTH=required) DATA_DIR/.secrets/admin.key, created once with
 * mode 0600 by the first API process to start and reused by every later one. Null when auth is off.
 */
export async function resolveAdminKey(config: Pick<Config, 'GRAFT_AUTH' | 'GRAFT_ADMIN_KEY' | 'GRAFT_ADMIN_KEY_FILE' | 'DATA_DIR'>, logger?: Logger): Promise<AdminKey | null> {
  if (config.GRAFT_AUTH === 'off') return null;
  if (config.GRAFT_ADMIN_KEY) return { hash: hashApiKey(config.GRAFT_ADMIN_KEY), source: 'GRAFT_ADMIN_KEY', file: null };
  if (config.GRAFT_ADMIN_KEY_FILE) {
    const key = await readKeyFile(config.GRAFT_ADMIN_KEY_FILE).catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError(`GRAFT_ADMIN_KEY_FILE ${config.GRAFT_ADMIN_KEY_FILE} cannot be read (${err.code ?? err.message}).`);
    });
    if (key.length < 32) throw new ConfigError(`GRAFT_ADMIN_KEY_FILE ${config.GRAFT_ADMIN_KEY_FILE} must hold a key of at least 32 characters.`);
    return { hash: hashApiKey(key), source: 'GRAFT_ADMIN_KEY_FILE', file: config.GRAFT_ADMIN_KEY_FILE };
  }
  const file = adminKeyPath(config.DATA_DIR);
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    // 'wx': exactly one process creates it, even when several start at once.
    await fs.writeFile(file, generateApiKey() + '\n', { flag: 'wx', mode: 0o600 });
    logger?.warn({ file }, 'created the bootstrap admin key (GRAFT_ADMIN_KEY_FILE unset); read it from this file');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // A process that lost the creation race may read before the winner's write lands.
  let key = '';
  for (let attempt = 0; attempt < 50 && key.length === 0; attempt++) {
    key = await readKeyFile(file);
    if (!key) await new Promise((r) => setTimeout(r, 20));
  }
  if (!key) throw new ConfigError(`${file} is empty; delete it to have a new admin key generated.`);
  return { hash: hashApiKey(key), source: 'generated', file };
}

/** The key in a file: its content without surrounding whitespace (editors add a newline). */
export async function readKeyFile(file: string): Promise<string> {
  return (await fs.readFile(file, 'utf8')).trim();
}
