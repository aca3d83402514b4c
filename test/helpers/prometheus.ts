/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4), written to the spec
 * (https://prometheus.io/docs/instrumenting/exposition_formats/) because no parser ships in our
 * dependencies: prom-client only writes the format. It throws on anything a Prometheus server
 * would reject or misread: bad names, bad label syntax or escapes, a sample before its TYPE, a
 * family split in two, duplicate series, histograms whose buckets are not cumulative or whose
 * +Inf bucket differs from _count.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/**
 * Values are Go floats (strconv.ParseFloat, which Prometheus's own parser uses): the special
 * values are case-insensitive, so prom-client's "Nan" (an event-loop histogram with no sample
 * yet) is as valid to Prometheus as "NaN".
 */
function parseValue(text: string, line: number): number {
  const special = text.toLowerCase();
  if (special === '+inf' || special === 'inf') return Infinity;
  if (special === '-inf') return -Infinity;
  if (special === 'nan') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

function parseLabels(text: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 0;
  for (;;) {
    while (text[i] === ' ') i++;
    if (text[i] === '}') return { labels, rest: text.slice(i + 1) };
    const nameMatch = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i));
    if (!nameMatch) throw new Error(`line ${line}: bad label name at ${JSON.stringify(text.slice(i))}`);
    const name = nameMatch[0];
    i += name.length;
    if (text[i] !== '=' || text[i + 1] !== '"') throw new Error(`line ${line}: expected ="…" after label ${name}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) throw new Error(`line ${line}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const next = text[i + 1];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else throw new Error(`line ${line}: bad escape \\${next} in label ${name}`);
        i += 2;
        continue;
      }
      if (c === '\n') throw new Error(`line ${line}: raw newline in label value`);
      value += c;
      i++;
    }
    i++;
    if (name in labels) throw new Error(`line ${line}: label ${name} twice`);
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new Error(`line ${line}: reserved label name ${name}`);
    labels[name] = value;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw new Error(`line ${line}: expected , or } after label ${name}`);
  }
}

/** The family a sample name belongs to (histogram and summary samples carry suffixes). */
function familyOf(sampleName: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(sampleName);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sampleName.endsWith(suffix)) continue;
    const f = families.get(sampleName.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
  }
  return undefined;
}

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  const seen = new Set<string>();
  let current: Family | undefined;
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`line ${line}: bad metric name ${name}`);
      let family = families.get(name);
      if (!family) {
        if (closed.has(name)) throw new Error(`line ${line}: family ${name} appears twice`);
        if (current) closed.add(current.name);
        family = { name, type: 'untyped', help: '', samples: [] };
        families.set(name, family);
        current = family;
      } else if (family !== current) throw new Error(`line ${line}: family ${name} is not contiguous`);
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`line ${line}: unknown type ${rest}`);
        if (family.samples.length) throw new Error(`line ${line}: TYPE of ${name} after its samples`);
        family.type = rest as Family['type'];
      } else family.help = rest;
      return;
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(raw);
    if (!nameMatch) throw new Error(`line ${line}: bad sample line ${JSON.stringify(raw)}`);
    const name = nameMatch[0];
    let rest = raw.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest.slice(1), line));
    const parts = rest.trim().split(/\s+/);
    if (!rest.startsWith(' ') || parts.length < 1 || parts.length > 2) throw new Error(`line ${line}: expected "<value> [timestamp]" in ${JSON.stringify(raw)}`);
    const value = parseValue(parts[0], line);
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`line ${line}: bad timestamp ${parts[1]}`);
    const family = familyOf(name, families);
    if (!family) throw new Error(`line ${line}: sample ${name} has no # TYPE before it`);
    if (family !== current) throw new Error(`line ${line}: sample ${name} outside its family's block`);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(key)) throw new Error(`line ${line}: duplicate series ${key}`);
    seen.add(key);
    if (family.type === 'counter' && (value < 0 || Number.isNaN(value))) throw new Error(`line ${line}: counter ${name} is ${value}`);
    if (name.endsWith('_bucket') && family.type === 'histogram' && labels.le === undefined) throw new Error(`line ${line}: bucket without le`);
    family.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name === `${f.name}_bucket`) entry.buckets.push([parseValue(le, 0), s.value]);
    else if (s.name === `${f.name}_count`) entry.count = s.value;
    else if (s.name === `${f.name}_sum`) entry.sum = s.value;
  }
  for (const [key, { buckets, count, sum }] of series) {
    if (count === undefined || sum === undefined) throw new Error(`histogram ${f.name}${key} lacks _count or _sum`);
    const last = buckets[buckets.length - 1];
    if (!last || last[0] !== Infinity) throw new Error(`histogram ${f.name}${key} has no +Inf bucket last`);
    if (last[1] !== count) throw new Error(`histogram ${f.name}${key}: +Inf bucket ${last[1]} != _count ${count}`);
    for (let i = 1; i < buckets.length; i++) {
      if (buckets[i][0] <= buckets[i - 1][0]) throw new Error(`histogram ${f.name}${key}: le not increasing`);
      if (buckets[i][1] < buckets[i - 1][1]) throw new Error(`histogram ${f.name}${key}: buckets not cumulative`);
    }
  }
}

/** The value of the one sample `name` whose labels include `labels` (0 when absent). */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return 0;
}

/** All samples called `name`. */
export function samplesOf(families: Map<string, Family>, name: string): Sample[] {
  return [...families.values()].flatMap((f) => f.samples.filter((s) => s.name === name));
}
