import { Job, type JobsOptions, type Queue } from 'bullmq';
import { unpack } from 'msgpackr';

/**
 * BullMQ's own insert of a job, captured instead of sent, so that create.lua can run it in the
 * same script that writes graft's record: a submission is one round trip, and a job is never
 * recorded without its queue entry (or queued without its record), whatever crashes between.
 *
 * Nothing here re-implements BullMQ: the arguments are the ones `Job.addJob` (its public hook for
 * adding a job on a caller's client or transaction) hands to its Redis client, and the Lua is
 * BullMQ's own script, from the installed package. Both are checked against each other, so a
 * BullMQ upgrade that changes either fails loudly (the script when the job scripts load, the
 * arguments at the first submission) and in test/unit/create-enqueue.test.ts, not silently.
 */
export interface BullInsert {
  /** BullMQ's keys for the script (as many as its `keys` count: create.lua's KEYS 24 on). */
  keys: string[];
  /**
   * Its three arguments, all as JSON: BullMQ's args array, the job data, and its options (whose
   * priority create.lua sets). BullMQ msgpacks the first and the last; they travel as JSON because
   * one Buffer among a command's arguments makes ioredis assemble the whole command piece by piece
   * into a Buffer, which cost a submission more than all create.lua does. create.lua packs them
   * back (cjson.decode, then cmsgpack.pack: a JSON null becomes nil, as BullMQ packs undefined).
   */
  args: string[];
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
export function captureBullInsert<D>(queue: Queue<D>, name: string, data: D, opts: JobsOptions & { jobId: string; priority: number }, timestamp?: number): BullInsert {
  let captured: { name: string; args: (string | Buffer)[] } | null = null;
  const capture = {
    runCommand: (command: string, args: (string | Buffer)[]) => {
      captured = { name: command, args };
      return Promise.resolve(opts.jobId);
    },
  };
  const job = new Job(queue, name, data, opts, opts.jobId);
  // Set on the job, not as the `timestamp` option, which BullMQ would also store among the options.
  if (timestamp !== undefined) job.timestamp = timestamp;
  // Runs synchronously up to the client call; the promise only settles the captured call.
  void job.addJob(capture as unknown as Parameters<Job['addJob']>[0]).catch(() => undefined);
  const command = captured as { name: string; args: (string | Buffer)[] } | null;
  const script = bullInsertScript();
  if (!command || command.name.split(':')[0] !== BULL_INSERT_SCRIPT || command.args.length !== script.keys + 3) {
    throw new Error(`BullMQ did not add the job with "${BULL_INSERT_SCRIPT}" (${script.keys} keys, 3 arguments) as graft's create.lua expects; it called ${command ? `"${command.name}" with ${command.args.length} values` : 'nothing'}.`);
  }
  const [args, jobData, options] = command.args.slice(script.keys);
  if (!Buffer.isBuffer(args) || typeof jobData !== 'string' || !Buffer.isBuffer(options)) {
    throw new Error(`BullMQ's "${BULL_INSERT_SCRIPT}" arguments are not (msgpack, JSON, msgpack) as graft's create.lua expects.`);
  }
  return { keys: command.args.slice(0, script.keys) as string[], args: [JSON.stringify(unpack(args)), jobData, JSON.stringify(unpack(options))] };
}

/** Stand-ins for the two values that differ between jobs (see BullInsertTemplate). */
const ID_STAND_IN = 'graft-bull-insert-job-id';
const TIMESTAMP_STAND_IN = 4102444800123; // 2100-01-01T00:00:00.123Z: never a real job's

/**
 * BullMQ's insert for any job id, from one capture. Between two jobs of a queue, BullMQ's keys
 * and arguments differ only in the job id and the timestamp (both given to it here), so they are
 * captured once with stand-ins and filled in per job, instead of building a BullMQ Job, packing and
 * unpacking per submission (a tenth of the API's work on `POST /v1/jobs`). The template checks
 * itself once against a real capture for another id and time; if the installed BullMQ put either
 * value anywhere the stand-ins cannot reach, every job is captured on its own instead.
 */
export class BullInsertTemplate<D> {
  private template: CompiledInsert | null | undefined;

  constructor(
    private readonly queue: Queue<D>,
    private readonly name: string,
    private readonly data: (jobId: string) => D,
    private readonly options: (jobId: string) => JobsOptions & { jobId: string; priority: number },
  ) {}

  /** Whether jobs are filled in from the template (false: each is captured on its own). */
  get templated(): boolean {
    return this.loaded() !== null;
  }

  for(jobId: string, timestamp = Date.now()): BullInsert {
    const template = this.loaded();
    return template ? fill(template, jobId, timestamp) : this.capture(jobId, timestamp);
  }

  private loaded(): CompiledInsert | null {
    if (this.template === undefined) this.template = this.build();
    return this.template;
  }

  private capture(jobId: string, timestamp: number): BullInsert {
    return captureBullInsert(this.queue, this.name, this.data(jobId), this.options(jobId), timestamp);
  }

  private build(): CompiledInsert | null {
    const template = compile(this.capture(ID_STAND_IN, TIMESTAMP_STAND_IN));
    const probe = { id: 'graft-template-probe', timestamp: 1_700_000_000_456 };
    const filled = fill(template, probe.id, probe.timestamp);
    const real = this.capture(probe.id, probe.timestamp);
    const same = JSON.stringify(filled.keys) === JSON.stringify(real.keys) && filled.args.every((arg, i) => sameJson(arg, real.args[i]));
    return same ? template : null;
  }
}

/** A slot of a compiled template: the job id, or the timestamp. */
const ID = 0;
const TIMESTAMP = 1;
type Piece = string | typeof ID | typeof TIMESTAMP;

/** The template cut at its stand-ins once, so that filling it in is a concatenation per value. */
interface CompiledInsert {
  keys: Piece[][];
  args: Piece[][];
}

function cut(text: string): Piece[] {
  const pieces: Piece[] = [];
  text.split(ID_STAND_IN).forEach((part, i) => {
    if (i > 0) pieces.push(ID);
    part.split(String(TIMESTAMP_STAND_IN)).forEach((literal, j) => {
      if (j > 0) pieces.push(TIMESTAMP);
      if (literal !== '') pieces.push(literal);
    });
  });
  return pieces;
}

function compile(template: BullInsert): CompiledInsert {
  return { keys: template.keys.map(cut), args: template.args.map(cut) };
}

function join(pieces: Piece[], id: string, timestamp: string): string {
  let text = '';
  for (const piece of pieces) text += piece === ID ? id : piece === TIMESTAMP ? timestamp : piece;
  return text;
}

function fill(template: CompiledInsert, jobId: string, timestamp: number): BullInsert {
  // The id sits inside JSON strings in the arguments (escaped as JSON would) and raw in keys.
  const idInJson = JSON.stringify(jobId).slice(1, -1);
  const time = String(timestamp);
  return { keys: template.keys.map((key) => join(key, jobId, time)), args: template.args.map((arg) => join(arg, idInJson, time)) };
}

function sameJson(a: string, b: string): boolean {
  try {
    return JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
  } catch {
    return false;
  }
}
