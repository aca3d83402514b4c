import { Job, type JobsOptions, type Queue } from 'bullmq';

/**
 * BullMQ's own insert of a job, captured instead of sent, so that create.lua can run it in the
 * same script that writes graft's record: a submission is one round trip, and a job is never
 * recorded without its queue entry (or queued without its record), whatever crashes between.
 *
 * Nothing here re-implements BullMQ: the arguments are the ones `Job.addJob` (its public hook for
 * adding a job on a caller's client or transaction) hands to its Redis client, and the Lua is
 * BullMQ's own script, from the installed package. Both are checked against each other, so a
 * BullMQ upgrade that changes either fails loudly at start-up and in the tests, not silently.
 */
export interface BullInsert {
  /** BullMQ's keys for the script (BULL_INSERT_KEY_COUNT of them). */
  keys: string[];
  /** Its arguments: msgpacked args, the job data as JSON, msgpacked options (priority set by create.lua). */
  args: (string | Buffer)[];
}

/** The script BullMQ runs to add a job that has a priority (graft's jobs always have one: their fair-scheduling tag). */
export const BULL_INSERT_SCRIPT = 'addPrioritizedJob';

interface BullScript {
  name: string;
  content: string;
  keys: number;
}

let source: BullScript | null = null;

/** BullMQ's Lua for BULL_INSERT_SCRIPT, as the installed BullMQ defines it on its own connections. */
export function bullInsertScript(): BullScript {
  if (!source) {
    // BullMQ ships its scripts as modules beside its classes; the index is not in its typings.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const scripts = require('bullmq/dist/cjs/scripts') as Record<string, BullScript | undefined>;
    const script = scripts[BULL_INSERT_SCRIPT];
    if (!script || typeof script.content !== 'string') throw new Error(`The installed BullMQ has no "${BULL_INSERT_SCRIPT}" script; graft's create.lua needs it.`);
    source = script;
  }
  return source;
}

/**
 * The keys and arguments BullMQ would send to add `jobId` to `queue`, without sending anything.
 * `opts.priority` must be set (any value: create.lua replaces it with the job's tag) so that BullMQ
 * chooses its prioritized insert.
 */
export function captureBullInsert<D>(queue: Queue<D>, name: string, data: D, opts: JobsOptions & { jobId: string; priority: number }): BullInsert {
  let captured: { name: string; args: (string | Buffer)[] } | null = null;
  const capture = {
    runCommand: (command: string, args: (string | Buffer)[]) => {
      captured = { name: command, args };
      return Promise.resolve(opts.jobId);
    },
  };
  const job = new Job(queue, name, data, opts, opts.jobId);
  // Runs synchronously up to the client call; the promise only settles the captured call.
  void job.addJob(capture as unknown as Parameters<Job['addJob']>[0]).catch(() => undefined);
  const command = captured as { name: string; args: (string | Buffer)[] } | null;
  const script = bullInsertScript();
  if (!command || command.name.split(':')[0] !== BULL_INSERT_SCRIPT || command.args.length !== script.keys + 3) {
    throw new Error(`BullMQ did not add the job with "${BULL_INSERT_SCRIPT}" (${script.keys} keys, 3 arguments) as graft's create.lua expects; it called ${command ? `"${command.name}" with ${command.args.length} values` : 'nothing'}.`);
  }
  return { keys: command.args.slice(0, script.keys) as string[], args: command.args.slice(script.keys) };
}
