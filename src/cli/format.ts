import type { Job, JobEvent, Plan } from './api';

/** Plain text tables for a terminal: columns padded to their widest cell, numbers right-aligned. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  return cells.map((r) => r.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

const num = (v: number | null | undefined, digits = 4): string => (v === null || v === undefined ? '-' : v.toFixed(digits));

/** The checkpoint a training job writes; for an evaluate or predict job, the one it uses. */
function outputName(job: Job): string {
  return 'output' in job.spec ? job.spec.output.checkpoint : `(${job.spec.type} ${job.spec.source.checkpoint})`;
}

export function jobsTable(jobs: Job[]): string {
  if (jobs.length === 0) return 'no jobs';
  return table(
    ['ID', 'TYPE', 'STATUS', 'OUTPUT', 'EPOCH', 'LOSS', 'CREATED'],
    jobs.map((j) => [j.id, j.type, j.status, outputName(j), j.progress ? `${j.progress.epoch}/${j.progress.epochs}` : '-', num(j.progress?.loss), j.createdAt]),
  );
}

export function jobDetails(job: Job): string {
  const lines = [
    `id        ${job.id}`,
    `type      ${job.type}`,
    `status    ${job.status}`,
    `output    ${outputName(job)}`,
    `created   ${job.createdAt}`,
    `started   ${job.startedAt ?? '-'}`,
    `finished  ${job.finishedAt ?? '-'}`,
    `attempts  ${job.attempts}${job.worker ? ` (last on ${job.worker})` : ''}`,
  ];
  const p = job.progress;
  if (p) {
    const parts = [`epoch ${p.epoch}/${p.epochs}` + (p.batches > 0 ? `, batch ${p.batch}/${p.batches}` : '') + (p.phase ? ` (${p.phase})` : '')];
    for (const [label, v] of [['loss', p.loss], ['accuracy', p.accuracy], ['val_loss', p.valLoss], ['val_accuracy', p.valAccuracy]] as const) if (v !== null) parts.push(`${label} ${num(v)}`);
    lines.push(`progress  ${parts.join(', ')}`);
  }
  if (job.result) {
    const m = job.result.metrics;
    lines.push(`result    checkpoint ${job.result.checkpoint} on ${job.result.backend}`);
    if (m.validation) lines.push(`          validation loss ${num(m.validation.loss)}, accuracy ${num(m.validation.accuracy)}`);
    if (m.test) lines.push(`          test loss ${num(m.test.loss)}, accuracy ${num(m.test.accuracy)}`);
  }
  if (job.error) lines.push(`error     ${job.error.code}: ${job.error.message}${job.error.param ? ` (at ${job.error.param})` : ''}`);
  return lines.join('\n');
}

export function eventLine(e: JobEvent): string {
  const level = e.level === 'info' ? '' : `${e.level.toUpperCase()} `;
  return `${e.at}  ${level}${e.message}`;
}

export function planTable(result: Plan): string {
  const out: string[] = [];
  const plan = result.plan;
  if (plan) {
    out.push(
      table(
        ['LAYER', 'CLASS', 'OUTPUT SHAPE', 'PARAMS', 'RESTORED', 'FROZEN', 'LR x'],
        plan.layers.map((l) => [l.name, l.className, JSON.stringify(l.outputShape), l.params, l.restored ? 'yes' : '', l.frozen ? 'yes' : '', l.lrMultiplier === null ? '-' : String(l.lrMultiplier)]),
      ),
    );
    out.push('', `task ${plan.task}, input ${JSON.stringify(plan.inputShape)}; params ${plan.params.total} total, ${plan.params.trainable} trainable, ${plan.params.frozen} frozen`);
    out.push(`weights restored ${plan.weights.restored.length}, skipped ${plan.weights.skipped.length}, mismatched ${plan.weights.mismatched.length}; feature cache ${plan.featureCache.applies ? `applies (up to ${plan.featureCache.boundaryLayer})` : 'does not apply'}`);
  }
  for (const w of result.warnings) out.push(`warning: ${w}`);
  for (const e of result.errors) out.push(`error: ${e.code}: ${e.message}${e.param ? ` (at ${e.param})` : ''}`);
  out.push(result.valid ? 'valid: POST /v1/jobs would accept this spec' : 'invalid: POST /v1/jobs would refuse this spec');
  return out.join('\n');
}
