import { apiKey, client, followEvents, setApiKey, unwrap, type Job, type JobEvent, type JobSpec, type JobStatus, type PlanResponse } from './api.js';
import { EpochChart } from './chart.js';
import { badge, bytes, duration, fmt, h, table, time, toast } from './dom.js';

/**
 * graft's dashboard: a hash-routed single page (#/jobs, #/jobs/<id>, #/submit, #/checkpoints,
 * #/datasets). Each view gets an AbortSignal that ends its timers and streams when the user
 * navigates away.
 */
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const STATUSES: JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const view = document.getElementById('view')!;
let current: AbortController | null = null;

function every(ms: number, signal: AbortSignal, fn: () => Promise<unknown>): void {
  const tick = async () => {
    if (signal.aborted) return;
    await fn().catch((err: Error) => toast(err.message));
    if (!signal.aborted) setTimeout(tick, ms);
  };
  void tick();
}

// ---- jobs list -------------------------------------------------------------------------------

function jobsView(signal: AbortSignal, status: JobStatus | ''): HTMLElement {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const filters = h(
    'div',
    { class: 'filters' },
    ...(['', ...STATUSES] as const).map((s) => h('button', { class: s === status ? 'on' : '', 'data-filter': s || 'all', onclick: () => (location.hash = s ? `#/jobs?status=${s}` : '#/jobs') }, s || 'all')),
  );
  every(2000, signal, async () => {
    const page = unwrap(await client.GET('/v1/jobs', { params: { query: { limit: 50, ...(status ? { status } : {}) } } }));
    const rows = page.data.map((j) => {
      const p = j.progress;
      return [h('span', { class: 'mono' }, j.id.slice(0, 8)), j.type, badge(j.status), 'output' in j.spec ? j.spec.output.checkpoint : j.spec.source.checkpoint, j.spec.dataset.name, p ? `${p.epoch}/${p.epochs}` : '–', fmt(p?.loss ?? j.result?.metrics.train?.loss ?? j.result?.metrics.validation?.loss), fmt(j.result?.metrics.test?.accuracy ?? j.result?.metrics.validation?.accuracy), time(j.createdAt)];
    });
    body.replaceChildren(
      page.data.length
        ? table(['id', 'type', 'status', 'output', 'dataset', 'epoch', 'loss', 'accuracy', 'created'], rows, { numeric: [5, 6, 7], onRow: (i) => (location.hash = `#/jobs/${page.data[i].id}`) })
        : h('p', { class: 'muted' }, 'No jobs', status ? ` with status ${status}` : '', '. ', h('a', { href: '#/submit' }, 'Submit one'), '.'),
    );
    body.querySelector('table')?.setAttribute('data-jobs', String(page.data.length));
  });
  return h('div', {}, h('h1', {}, 'Jobs'), filters, h('div', { class: 'panel' }, body));
}

// ---- one job ---------------------------------------------------------------------------------

function planTable(plan: PlanResponse): HTMLElement {
  const rows = (plan.plan?.layers ?? []).map((l) => [
    h('span', { class: 'mono' }, l.name),
    l.className,
    h('span', { class: 'mono' }, JSON.stringify(l.outputShape)),
    l.params.toLocaleString(),
    l.restored ? h('span', { class: 'yes' }, 'restored') : '',
    l.frozen ? h('span', { class: 'yes' }, 'frozen') : 'trainable',
    l.lrMultiplier === null ? '–' : String(l.lrMultiplier),
  ]);
  const p = plan.plan?.params;
  return h(
    'div',
    { 'data-plan': plan.valid ? 'valid' : 'invalid' },
    rows.length ? table(['layer', 'class', 'output shape', 'params', 'restored', 'frozen', 'lr ×'], rows, { numeric: [3] }) : null,
    p ? h('p', { class: 'muted' }, `${p.total.toLocaleString()} parameters: ${p.trainable.toLocaleString()} trainable, ${p.frozen.toLocaleString()} frozen. Feature cache ${plan.plan!.featureCache.applies ? 'applies' : 'does not apply'}.`) : null,
    ...plan.warnings.map((w) => h('p', { class: 'muted' }, '⚠ ', w)),
    ...plan.errors.map((e) => h('p', { class: 'error-text' }, `${e.code}: ${e.message}`, e.param ? ` (at ${e.param})` : '')),
  );
}

function confusion(matrix: number[][], labels: string[]): HTMLElement {
  const max = Math.max(1, ...matrix.map((row) => Math.max(...row)));
  return h(
    'table',
    { class: 'heat', 'data-confusion': String(matrix.length) },
    h('tr', {}, h('th', {}, 'true \\ predicted'), ...labels.map((l) => h('th', {}, l))),
    ...matrix.map((row, i) =>
      h(
        'tr',
        {},
        h('th', {}, labels[i] ?? String(i)),
        ...row.map((v) => {
          const a = v / max;
          return h('td', { style: `background: rgba(47,111,237,${a.toFixed(3)}); color: ${a > 0.55 ? '#fff' : '#1d2330'}` }, v);
        }),
      ),
    ),
  );
}

function progressText(p: NonNullable<Job['progress']>): string {
  const parts = [`epoch ${p.epoch}/${p.epochs}` + (p.batches > 0 ? `, batch ${p.batch}/${p.batches}` : '') + (p.phase ? ` (${p.phase})` : '')];
  if (p.loss !== null) parts.push(`loss ${fmt(p.loss)}`);
  if (p.valLoss !== null) parts.push(`val loss ${fmt(p.valLoss)}`);
  if (p.samplesPerSecond) parts.push(`${Math.round(p.samplesPerSecond)} samples/s`);
  return parts.join(' · ');
}

function jobView(signal: AbortSignal, id: string): HTMLElement {
  const title = h('h1', {}, 'Job ', h('span', { class: 'mono' }, id));
  const summary = h('div', { class: 'panel' }, h('p', { class: 'muted' }, 'Loading…'));
  const lossChart = new EpochChart('Loss', [{ label: 'loss', stroke: '#2f6fed' }, { label: 'val loss', stroke: '#e8590c', dash: [6, 4] }], 'loss');
  const accChart = new EpochChart('Accuracy', [{ label: 'accuracy', stroke: '#1a8f4c' }, { label: 'val accuracy', stroke: '#9c36b5', dash: [6, 4] }], 'accuracy');
  signal.addEventListener('abort', () => (lossChart.destroy(), accChart.destroy()));
  const log = h('div', { class: 'events', 'data-events': '0' });
  const results = h('div', {});
  const planBox = h('div', {}, h('p', { class: 'muted' }, 'Loading the plan…'));
  let count = 0;
  let finished = false;

  const onEvent = (e: JobEvent) => {
    count++;
    log.dataset.events = String(count);
    log.append(h('div', { class: e.level }, h('time', {}, new Date(e.at).toLocaleTimeString()), e.message));
    log.scrollTop = log.scrollHeight;
    const d = e.data as Record<string, number | null> | null;
    if (e.type === 'metrics' && d && typeof d.epoch === 'number') {
      lossChart.set(d.epoch, [d.loss, d.valLoss]);
      if (d.accuracy !== null && d.accuracy !== undefined) accChart.set(d.epoch, [d.accuracy, d.valAccuracy]);
    }
  };

  const render = (job: Job) => {
    const p = job.progress;
    const done = p && p.epochs > 0 && p.batches > 0 ? Math.min(1, ((p.epoch - 1) * p.batches + p.batch) / (p.epochs * p.batches)) : job.status === 'succeeded' ? 1 : 0;
    const elapsed = job.startedAt ? ((job.finishedAt ? Date.parse(job.finishedAt) : Date.now()) - Date.parse(job.startedAt)) / 1000 : 0;
    const eta = job.status === 'running' && done > 0.01 ? duration((elapsed * (1 - done)) / done) : '–';
    const cancel = h('button', { class: 'danger', 'data-action': 'cancel', onclick: () => void cancelJob(job.id) }, 'Cancel');
    if (TERMINAL.has(job.status)) cancel.setAttribute('disabled', '');
    title.replaceChildren('Job ', h('span', { class: 'mono' }, job.id), badge(job.status), cancel);
    summary.replaceChildren(
      h(
        'dl',
        { class: 'kv' },
        h('dt', {}, 'type'), h('dd', {}, job.type),
        h('dt', {}, 'output'), h('dd', {}, h('a', { href: '#/checkpoints' }, 'output' in job.spec ? job.spec.output.checkpoint : job.spec.source.checkpoint)),
        h('dt', {}, 'dataset'), h('dd', {}, job.spec.dataset.name),
        h('dt', {}, 'source'), h('dd', {}, job.spec.type === 'transfer' ? (job.spec as { source?: { checkpoint?: string } }).source?.checkpoint ?? '–' : 'built from scratch'),
        h('dt', {}, 'progress'), h('dd', { 'data-progress': (done * 100).toFixed(0) }, p ? progressText(p) : job.status),
        h('dt', {}, 'time'), h('dd', {}, `${duration(elapsed)} elapsed · ETA ${eta}`),
        h('dt', {}, 'worker'), h('dd', {}, job.worker ?? '–'),
      ),
      h('div', { class: 'progress' }, h('div', { style: `width: ${(done * 100).toFixed(1)}%` })),
      ...(job.error ? [h('p', { class: 'error-text' }, `${job.error.code}: ${job.error.message}`)] : []),
    );
    const m = job.result?.metrics;
    const set = m?.test ?? m?.validation ?? null;
    if (job.result && set && !results.childElementCount) {
      const labels = Object.keys(set.perClassAccuracy ?? {});
      results.replaceChildren(
        h(
          'div',
          { class: 'panel' },
          h('h2', {}, `Result: ${job.result.checkpoint} (${job.result.backend})`),
          h('p', {}, m?.test ? `test loss ${fmt(m.test.loss)}, accuracy ${fmt(m.test.accuracy)} · ` : '', m?.validation ? `validation loss ${fmt(m.validation.loss)}, accuracy ${fmt(m.validation.accuracy)}` : ''),
          set.confusionMatrix ? h('div', {}, h('h2', {}, `Confusion matrix (${m?.test ? 'test' : 'validation'} split)`), confusion(set.confusionMatrix, labels.length ? labels : set.confusionMatrix.map((_, i) => String(i)))) : null,
        ),
      );
    }
  };

  const cancelJob = async (jobId: string) => {
    const r = await client.POST('/v1/jobs/{id}/cancel', { params: { path: { id: jobId } } });
    try {
      render(unwrap(r));
    } catch (err) {
      toast((err as Error).message);
    }
  };

  void (async () => {
    try {
      const job = unwrap(await client.GET('/v1/jobs/{id}', { params: { path: { id } } }));
      render(job);
      const plan = await client.POST('/v1/plans', { body: job.spec });
      planBox.replaceChildren(plan.data ? planTable(plan.data) : h('p', { class: 'muted' }, 'No plan available.'));
    } catch (err) {
      summary.replaceChildren(h('p', { class: 'error-text' }, (err as Error).message));
      finished = true;
    }
  })();
  every(1000, signal, async () => {
    if (finished) return;
    const job = unwrap(await client.GET('/v1/jobs/{id}', { params: { path: { id } } }));
    render(job);
    if (TERMINAL.has(job.status)) finished = true;
  });
  followEvents(id, onEvent, signal).catch((err: Error) => toast(err.message));

  return h(
    'div',
    {},
    title,
    summary,
    h('div', { class: 'grid2' }, h('div', { class: 'panel' }, lossChart.el), h('div', { class: 'panel' }, accChart.el)),
    h('div', { style: 'height:16px' }),
    results,
    h('div', { class: 'grid2 wide-right' }, h('div', { class: 'panel' }, h('h2', {}, 'Events'), log), h('div', { class: 'panel' }, h('h2', {}, 'Plan: layers'), planBox)),
  );
}

// ---- submit ----------------------------------------------------------------------------------

function exampleSpec(dataset: string): JobSpec {
  return {
    type: 'pretrain',
    model: { architecture: 'conv-classifier', options: { filters: [8, 16] } },
    dataset: { name: dataset, validationSplit: 0.1 },
    training: { epochs: 3, batchSize: 32, seed: 1 },
    output: { checkpoint: `${dataset}-classifier-${Date.now().toString(36)}` },
  } as JobSpec;
}

function submitView(): HTMLElement {
  const text = h('textarea', { id: 'spec', spellcheck: 'false' });
  const planBox = h('div', { id: 'plan' }, h('p', { class: 'muted' }, 'Dry-run the spec to see the network and every error before anything is queued.'));
  const submit = h('button', { class: 'primary', id: 'submit', disabled: true }, 'Submit job');
  const dryRun = h('button', { id: 'dry-run' }, 'Dry run (plan)');
  let planned = '';
  const parse = (): JobSpec | null => {
    try {
      return JSON.parse(text.value) as JobSpec;
    } catch (err) {
      planBox.replaceChildren(h('p', { class: 'error-text' }, `Not JSON: ${(err as Error).message}`));
      return null;
    }
  };
  text.addEventListener('input', () => {
    submit.disabled = text.value !== planned;
  });
  dryRun.addEventListener('click', async () => {
    const spec = parse();
    if (!spec) return;
    const r = await client.POST('/v1/plans', { body: spec });
    if (!r.data) {
      const e = (r.error as { error?: { message?: string; param?: string | null } } | undefined)?.error;
      planBox.replaceChildren(h('p', { class: 'error-text' }, e?.message ?? `The API answered ${r.response.status}`, e?.param ? ` (at ${e.param})` : ''));
      submit.disabled = true;
      return;
    }
    planBox.replaceChildren(h('p', { class: r.data.valid ? 'ok-text' : 'error-text' }, r.data.valid ? 'Valid: the job would be accepted.' : 'Invalid: the job would be refused.'), planTable(r.data));
    planned = text.value;
    submit.disabled = !r.data.valid;
  });
  submit.addEventListener('click', async () => {
    const spec = parse();
    if (!spec) return;
    try {
      const job = unwrap(await client.POST('/v1/jobs', { body: spec }));
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      toast((err as Error).message);
    }
  });
  void (async () => {
    const datasets = unwrap(await client.GET('/v1/datasets')).data;
    if (!text.value) text.value = JSON.stringify(exampleSpec(datasets[0]?.name ?? 'mnist'), null, 2);
  })().catch((err: Error) => toast(err.message));
  return h('div', {}, h('h1', {}, 'Submit a job'), h('div', { class: 'grid2 wide-right' }, h('div', { class: 'panel' }, text, h('p', {}, dryRun, ' ', submit)), h('div', { class: 'panel' }, h('h2', {}, 'Plan'), planBox)));
}

// ---- checkpoints and datasets ----------------------------------------------------------------

function checkpointsView(): HTMLElement {
  const body = h('div', { class: 'panel' }, h('p', { class: 'muted' }, 'Loading…'));
  void (async () => {
    const list = unwrap(await client.GET('/v1/checkpoints')).data;
    const details = await Promise.all(list.map((c) => client.GET('/v1/checkpoints/{name}', { params: { path: { name: c.name } } }).then((r) => r.data ?? null)));
    const rows = list.map((c, i) => {
      const m = details[i]?.manifest;
      const lineage = h(
        'span',
        { class: 'lineage' },
        m?.source?.checkpoint ? h('span', { class: 'mono' }, m.source.checkpoint) : h('span', { class: 'muted' }, m?.jobType === 'upload' ? 'uploaded' : 'scratch'),
        h('span', { class: 'arrow' }, '→'),
        c.jobId && m?.jobType !== 'upload' ? h('a', { class: 'mono', href: `#/jobs/${c.jobId}` }, `job ${c.jobId.slice(0, 8)}`) : h('span', { class: 'muted' }, m?.jobType ?? '?'),
        h('span', { class: 'arrow' }, '→'),
        h('strong', { class: 'mono' }, c.name),
      );
      const acc = (m?.metrics as { test?: { accuracy?: number } } | undefined)?.test?.accuracy;
      return [lineage, c.task ?? '–', c.params?.toLocaleString() ?? '–', fmt(acc), m?.backend ?? '–', bytes(c.sizeBytes), time(c.createdAt), h('a', { href: `/v1/checkpoints/${encodeURIComponent(c.name)}/archive` }, 'download')];
    });
    body.replaceChildren(list.length ? table(['lineage: source → job → checkpoint', 'task', 'params', 'test acc.', 'backend', 'size', 'created', ''], rows, { numeric: [2, 3, 5] }) : h('p', { class: 'muted' }, 'No checkpoints yet.'));
  })().catch((err: Error) => body.replaceChildren(h('p', { class: 'error-text' }, err.message)));
  return h('div', {}, h('h1', {}, 'Checkpoints'), body);
}

function datasetsView(): HTMLElement {
  const body = h('div', { class: 'panel' }, h('p', { class: 'muted' }, 'Loading…'));
  void (async () => {
    const list = unwrap(await client.GET('/v1/datasets')).data;
    const details = await Promise.all(list.map((d) => client.GET('/v1/datasets/{name}', { params: { path: { name: d.name } } }).then((r) => r.data ?? null)));
    const rows = list.map((d, i) => {
      const det = details[i];
      const per = det?.splits.train.perClass ?? [];
      const max = Math.max(1, ...per);
      const bars = h('div', { class: 'bars', title: per.map((n, c) => `${det?.classes[c]}: ${n}`).join(', ') }, ...per.map((n) => h('div', { style: `height: ${Math.max(2, (60 * n) / max)}px` })));
      return [h('strong', { class: 'mono' }, d.name), d.format ?? '–', d.inputShape ? d.inputShape.join('×') : '–', d.numClasses ?? '–', d.trainCount ?? '–', d.testCount ?? '–', bars, bytes(d.sizeBytes)];
    });
    body.replaceChildren(list.length ? table(['name', 'format', 'input', 'classes', 'train', 'test', 'train samples per class', 'size'], rows, { numeric: [3, 4, 5, 7] }) : h('p', { class: 'muted' }, 'No datasets yet.'));
  })().catch((err: Error) => body.replaceChildren(h('p', { class: 'error-text' }, err.message)));
  return h('div', {}, h('h1', {}, 'Datasets'), body);
}

// ---- router ----------------------------------------------------------------------------------

function route(): void {
  current?.abort();
  current = new AbortController();
  const [path, query] = (location.hash.slice(1) || '/jobs').split('?');
  const parts = path.split('/').filter(Boolean);
  const section = parts[0] ?? 'jobs';
  for (const a of document.querySelectorAll<HTMLAnchorElement>('[data-nav]')) a.classList.toggle('active', a.dataset.nav === section);
  let el: HTMLElement;
  if (section === 'jobs' && parts[1]) el = jobView(current.signal, decodeURIComponent(parts[1]));
  else if (section === 'submit') el = submitView();
  else if (section === 'checkpoints') el = checkpointsView();
  else if (section === 'datasets') el = datasetsView();
  else el = jobsView(current.signal, (new URLSearchParams(query).get('status') ?? '') as JobStatus | '');
  view.replaceChildren(el);
}

const keyInput = document.getElementById('key') as HTMLInputElement;
keyInput.value = apiKey();
keyInput.addEventListener('change', () => {
  setApiKey(keyInput.value.trim());
  route();
});
document.getElementById('key-form')!.addEventListener('submit', (e) => e.preventDefault());
window.addEventListener('hashchange', route);
route();
