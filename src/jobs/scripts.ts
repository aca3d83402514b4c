import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { bullInsertScript } from './bull-insert';

/**
 * The job scripts (src/jobs/lua/*.lua): each transition that creates, moves or ends a job is one
 * of them, so status, indexes, TTLs, the reservation and the cancel flag change together or not
 * at all. lib.lua is prepended to each. `npm run build` copies the folder next to the compiled
 * code, so this loads the same files from src/ (tests) and from dist/ (processes).
 */
export const SCRIPT_NAMES = ['create', 'start', 'transition', 'cancel', 'commit', 'poll', 'progress', 'append', 'forget', 'adopt'] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

/** Every script takes the keys of JobKeys.scriptKeys. */
export const SCRIPT_KEY_COUNT = 23;

/** create.lua also takes BullMQ's keys for its insert (bull-insert.ts), after those. */
export const CREATE_KEY_COUNT = SCRIPT_KEY_COUNT + bullInsertScript().keys;

const LUA_DIR = path.join(__dirname, 'lua');

let sources: Map<ScriptName, string> | null = null;

function loadSources(): Map<ScriptName, string> {
  if (!sources) {
    const lib = readFileSync(path.join(LUA_DIR, 'lib.lua'), 'utf8');
    sources = new Map(SCRIPT_NAMES.map((name) => [name, `${lib}\n${name === 'create' ? withBullInsert() : ''}${readFileSync(path.join(LUA_DIR, `${name}.lua`), 'utf8')}`]));
  }
  return sources;
}

/**
 * BullMQ's own insert script as a local function of create.lua: its KEYS and ARGV become the
 * function's parameters, its top-level returns the function's result (the job id, or a negative
 * BullMQ error code).
 */
function withBullInsert(): string {
  const { keys, content } = bullInsertScript();
  return `local BULL_INSERT_KEYS = ${keys}\nlocal function bull_insert(KEYS, ARGV)\n${content}\nend\n`;
}

const commandName = (name: ScriptName) => `graftJob_${name}`;

/** Runs job scripts on one connection (defined once per connection; ioredis caches by SHA). */
export class JobScripts {
  constructor(private readonly redis: Redis) {
    if (!(commandName('create') in redis)) {
      for (const [name, lua] of loadSources()) redis.defineCommand(commandName(name), { numberOfKeys: name === 'create' ? CREATE_KEY_COUNT : SCRIPT_KEY_COUNT, lua });
    }
  }

  run(name: ScriptName, keys: string[], args: (string | number)[]): Promise<unknown> {
    const fn = (this.redis as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown>>)[commandName(name)];
    return fn.call(this.redis, ...keys, ...args);
  }
}
