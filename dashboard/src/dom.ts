/** Tiny DOM helpers: elements built with text nodes (never innerHTML with API data). */
type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | ((e: Event) => void)> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (v === true) el.setAttribute(k, '');
    else if (v !== false) el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c);
  return el;
}

export function badge(status: string): HTMLElement {
  return h('span', { class: `badge ${status}`, 'data-status': status }, status);
}

export const fmt = (v: number | null | undefined, digits = 4): string => (v === null || v === undefined ? '–' : v.toFixed(digits));

export function bytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function time(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '–';
}

export function toast(message: string): void {
  const el = document.getElementById('toast')!;
  el.textContent = message;
  el.hidden = false;
  setTimeout(() => (el.hidden = true), 6000);
}

export function table(headers: string[], rows: Child[][], opts: { numeric?: number[]; onRow?: (i: number) => void } = {}): HTMLTableElement {
  const num = new Set(opts.numeric ?? []);
  return h(
    'table',
    {},
    h('thead', {}, h('tr', {}, ...headers.map((t, i) => h('th', { class: num.has(i) ? 'num' : '' }, t)))),
    h('tbody', {}, ...rows.map((r, ri) => h('tr', opts.onRow ? { class: 'link', onclick: () => opts.onRow!(ri) } : {}, ...r.map((c, i) => h('td', { class: num.has(i) ? 'num' : '' }, c))))),
  );
}
