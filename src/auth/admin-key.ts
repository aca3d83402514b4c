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
 * GRAFT_ADMIN_KEY_FILE (default DATA_DIR/.secrets/admin.key). A missing file is created once, mode
 * 0600, with a new key by the first API process to start and reused by every later one (Compose
 * keeps it on the volume). Null when auth is off.
 */
export async function resolveAdminKey(config: Pick<Config, 'GRAFT_AUTH' | 'GRAFT_ADMIN_KEY' | 'GRAFT_ADMIN_KEY_FILE' | 'DATA_DIR'>, logger?: Logger): Promise<AdminKey | null> {
  if (config.GRAFT_AUTH === 'off') return null;
  if (config.GRAFT_ADMIN_KEY) return { hash: hashApiKey(config.GRAFT_ADMIN_KEY), source: 'GRAFT_ADMIN_KEY', file: null };
  const configured = config.GRAFT_ADMIN_KEY_FILE;
  const file = configured ?? adminKeyPath(config.DATA_DIR);
  const created = await createOnce(file).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(`The admin key file ${file} (GRAFT_ADMIN_KEY_FILE) cannot be created (${err.code ?? err.message}).`);
  });
  if (created) logger?.warn({ file }, 'created the bootstrap admin key; read it from this file');
  // A process that lost the creation race may read before the winner's write lands.
  let key = '';
  for (let attempt = 0; attempt < 50 && key.length === 0; attempt++) {
    key = await readKeyFile(file).catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError(`The admin key file ${file} (GRAFT_ADMIN_KEY_FILE) cannot be read (${err.code ?? err.message}).`);
    });
    if (!key) await new Promise((r) => setTimeout(r, 20));
  }
  if (key.length < 32) throw new ConfigError(`The admin key file ${file} (GRAFT_ADMIN_KEY_FILE) must hold a key of at least 32 characters; delete it to have one generated.`);
  return { hash: hashApiKey(key), source: configured ? 'GRAFT_ADMIN_KEY_FILE' : 'generated', file };
}

/**
 * Writes a new key to `file` unless it exists ('wx': exactly one process creates it, even when
 * several start at once). A read-only file (a compose or Kubernetes secret) is never written.
 */
async function createOnce(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return false;
  } catch {
    // absent: create it below
  }
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    await fs.writeFile(file, generateApiKey() + '\n', { flag: 'wx', mode: 0o600 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** The key in a file: its content without surrounding whitespace (editors add a newline). */
export async function readKeyFile(file: string): Promise<string> {
  return (await fs.readFile(file, 'utf8')).trim();
}
