#!/usr/bin/env node
import { promises as fs, readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { adminKeyPath } from '../auth/admin-key';
import { ApiError, GraftApi, type JobSpec, type JobStatus } from './api';
import { eventLine, jobDetails, jobsTable, planTable } from './format';
import { watchJob } from './watch';

/**
 * `graft`: the command line for a graft service at GRAFT_URL, with the API key of --key or
 * GRAFT_KEY (else the local bootstrap admin key, see localAdminKey). Exit codes: 0 success; 1 the API refused or could not be reached (its message is
 * printed, not a stack); 2 a watched job failed; 3 a watched job was cancelled; 64 bad usage.
 */
export const EXIT = { ok: 0, api: 1, jobFailed: 2, jobCancelled: 3, usage: 64 } as const;

const JOB_STATUSES: JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

interface GlobalOptions {
  url: string;
  key?: string;
  json?: boolean;
}

async function readSpec(file: string): Promise<JobSpec> {
  const text = await (file === '-' ? readStdin() : fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new ApiError(`Cannot read ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}.`, null, 'bad_file');
  }));
  try {
    return JSON.parse(text) as JobSpec;
  } catch (err) {
    throw new ApiError(`${file} is not JSON: ${(err as Error).message}.`, null, 'invalid_json');
  }
}

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  return text;
}

/**
 * Single-machine convenience: with no --key / GRAFT_KEY, the admin key `npm start` created in
 * DATA_DIR/.secrets/admin.key, when this user can read it (on a shared host it cannot: mode 0600).
 */
function localAdminKey(): string | undefined {
  try {
    return readFileSync(adminKeyPath(process.env.DATA_DIR || './data'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export function buildProgram(): Command {
  const program = new Command('graft')
    .description('Drive a graft service: submit and watch transfer-learning jobs, move datasets and checkpoints.')
    .addOption(new Option('--url <url>', 'graft API base URL').env('GRAFT_URL').default('http://127.0.0.1:3000'))
    .addOption(new Option('--key <key>', 'API key (sent as a Bearer token)').env('GRAFT_KEY'))
    .option('--json', 'print the API\'s JSON instead of tables (for scripts)')
    .showHelpAfterError()
    .exitOverride();

  const ctx = () => {
    const opts = program.opts<GlobalOptions>();
    return { api: new GraftApi(opts.url, opts.key ?? localAdminKey()), json: Boolean(opts.json) };
  };
  const print = (json: boolean, value: unknown, text: () => string) => process.stdout.write((json ? JSON.stringify(value, null, 2) : text()) + '\n');

  program
    .command('jobs')
    .description('list jobs, newest first')
    .addOption(new Option('-s, --status <status>', 'only jobs with this status').choices(JOB_STATUSES))
    .option('-n, --limit <n>', 'how many', (v) => Number.parseInt(v, 10), 20)
    .option('--cursor <cursor>', 'nextCursor of a previous page')
    .action(async (o: { status?: JobStatus; limit: number; cursor?: string }) => {
      const { api, json } = ctx();
      const page = await api.listJobs({ status: o.status, limit: o.limit, cursor: o.cursor });
      print(json, page, () => jobsTable(page.data) + (page.nextCursor ? `\n(more: --cursor ${page.nextCursor})` : ''));
    });

  program
    .command('show <id>')
    .description('a job: status, progress, result or error')
    .action(async (id: string) => {
      const { api, json } = ctx();
      const job = await api.getJob(id);
      print(json, job, () => jobDetails(job));
    });

  program
    .command('logs <id>')
    .description("a job's events; -f follows them live until the job ends")
    .option('-f, --follow', 'follow live (Server-Sent Events)')
    .action(async (id: string, o: { follow?: boolean }) => {
      const { api, json } = ctx();
      const line = (e: Parameters<typeof eventLine>[0]) => process.stdout.write((json ? JSON.stringify(e) : eventLine(e)) + '\n');
      if (o.follow) for await (const e of api.streamEvents(id)) line(e);
      else for (const e of await api.events(id)) line(e);
    });

  program
    .command('cancel <id>')
    .description('cancel a queued or running job')
    .action(async (id: string) => {
      const { api, json } = ctx();
      const job = await api.cancel(id);
      print(json, job, () => (job.status === 'cancelled' ? `${id} cancelled` : `${id}: cancellation requested; the worker stops at the next batch`));
    });

  program
    .command('plan <spec>')
    .description('dry-run a spec file (- for stdin): the layer table and every error the job would hit')
    .action(async (file: string) => {
      const { api, json } = ctx();
      const plan = await api.plan(await readSpec(file));
      print(json, plan, () => planTable(plan));
      if (!plan.valid) process.exitCode = EXIT.api;
    });

  program
    .command('submit <spec>')
    .description('submit a spec file (- for stdin); --watch follows it and exits 0 only if it succeeds')
    .option('-w, --watch', 'follow the job with a progress bar until it ends')
    .option('--idempotency-key <key>', 'retry-safe submission: the same key and body return the original job')
    .action(async (file: string, o: { watch?: boolean; idempotencyKey?: string }) => {
      const { api, json } = ctx();
      let job = await api.submit(await readSpec(file), o.idempotencyKey);
      if (!o.watch) {
        print(json, job, () => `${job.id} ${job.status}`);
        return;
      }
      process.stderr.write(`${job.id} submitted; watching (Ctrl-C stops watching, not the job)\n`);
      job = await watchJob(api, job.id, process.stderr, Boolean(process.stderr.isTTY) && !json);
      print(json, job, () => jobDetails(job));
      process.exitCode = job.status === 'succeeded' ? EXIT.ok : job.status === 'cancelled' ? EXIT.jobCancelled : EXIT.jobFailed;
    });

  program
    .command('upload <kind> <name> <path>')
    .description('upload a dataset or checkpoint: a folder is archived and streamed, a file (.zip, .tar.gz, model.json) sent as is')
    .action(async (kind: string, name: string, source: string) => {
      if (kind !== 'dataset' && kind !== 'checkpoint') throw new CommanderError(EXIT.usage, 'graft.usage', `kind must be dataset or checkpoint, not ${JSON.stringify(kind)}`);
      const { api, json } = ctx();
      const described = await api.upload(kind, name, source);
      print(json, described, () => `${kind} ${name} uploaded`);
    });

  program
    .command('download <name>')
    .description('download a checkpoint as .tar.gz')
    .option('-o, --output <file>', 'where to write it (default <name>.tar.gz)')
    .action(async (name: string, o: { output?: string }) => {
      const { api, json } = ctx();
      const file = o.output ?? `${name}.tar.gz`;
      const bytes = await api.download(name, file);
      print(json, { name, file, bytes }, () => `${file} (${bytes} bytes)`);
    });

  return program;
}

export async function run(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return EXIT.ok;
      if (err.code === 'graft.usage') process.stderr.write(`graft: ${err.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof ApiError) {
      process.stderr.write(`graft: ${err.message}${err.param ? ` (at ${err.param})` : ''}${err.status ? ` [${err.status} ${err.code}]` : ''}\n`);
      return EXIT.api;
    }
    process.stderr.write(`graft: ${(err as Error).message ?? String(err)}\n`);
    return EXIT.api;
  }
}

if (require.main === module) {
  void run(process.argv).then((code) => {
    process.exitCode = code;
  });
}
