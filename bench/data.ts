import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { forEachConcurrent } from '../src/storage/concurrency';
import { CACHE_DIR } from '../src/storage/datasets';
import { DataLayout } from '../src/storage/layout';
import { initBackend, type BackendPreference } from '../workers/engine/backend';
import { saveCheckpoint } from '../workers/engine/checkpoint-io';
import { runJob } from '../workers/engine/run-job';

/**
 * `npm run bench:data` (issue 13): a real-size image dataset through the real engine.
 *   1. 20,000 JPEGs at 224×224 in 10 class folders (generated once, kept in $TMPDIR/graft-bench-data)
 *   2. a bare sharp decode loop over all of them (same concurrency, same resize): images/s
 *   3. a transfer job in a child process with a frozen MobileNet v1 backbone (alpha 1.0, 224×224,
 *      3.2 M parameters) and a new head: the cold sample cache is built from all 20,000 files, then
 *      training runs on a bounded subset (`limit`: a MobileNet forward pass over 20,000 images takes
 *      far longer than a benchmark should on a 2-core machine). Peak RSS = the child's VmHWM.
 * Targets: peak RSS ≤ 1.5 GB; cache-building decode rate ≥ 0.5× the bare loop.
 * Writes bench/results/data.json.
 */
/** BENCH_DATA_IMAGES only to smoke-test the script; the acceptance figure is the default. */
const IMAGES = Number(process.env.BENCH_DATA_IMAGES ?? 20_000);
const SIZE = 224;
const CLASSES = 10;
const TRAIN_LIMIT = Number(process.env.BENCH_DATA_LIMIT ?? 320);
const RSS_TARGET_BYTES = 1.5 * 1024 ** 3;
const RATE_TARGET = 0.5;
const CONCURRENCY = 2 * os.availableParallelism();
const ROOT = path.join(os.tmpdir(), `graft-bench-data-${IMAGES}`);

/** MobileNet v1 (Howard et al. 2017), alpha 1.0: 13 depthwise-separable blocks, BN + ReLU6. */
function mobileNetV1(): tf.LayersModel {
  const input = tf.input({ shape: [SIZE, SIZE, 3], name: 'image' });
  const bnRelu = (x: tf.SymbolicTensor, name: string) => {
    const y = tf.layers.batchNormalization({ name: `${name}_bn` }).apply(x) as tf.SymbolicTensor;
    return tf.layers.reLU({ maxValue: 6, name: `${name}_relu` }).apply(y) as tf.SymbolicTensor;
  };
  let x = bnRelu(tf.layers.conv2d({ name: 'conv1', filters: 32, kernelSize: 3, strides: 2, padding: 'same', useBias: false }).apply(input) as tf.SymbolicTensor, 'conv1');
  const blocks: [number, number][] = [[64, 1], [128, 2], [128, 1], [256, 2], [256, 1], [512, 2], [512, 1], [512, 1], [512, 1], [512, 1], [512, 1], [1024, 2], [1024, 1]];
  blocks.forEach(([filters, strides], i) => {
    const n = `block${i + 1}`;
    x = bnRelu(tf.layers.depthwiseConv2d({ name: `${n}_dw`, kernelSize: 3, strides, padding: 'same', useBias: false }).apply(x) as tf.SymbolicTensor, `${n}_dw`);
    x = bnRelu(tf.layers.conv2d({ name: `${n}_pw`, filters, kernelSize: 1, useBias: false }).apply(x) as tf.SymbolicTensor, `${n}_pw`);
  });
  x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ name: 'predictions', units: 1000, activation: 'softmax' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'mobilenet_v1' });
}

/** Random-ish photos: a class-tinted gradient, noise, and a few rectangles; JPEG quality 85. */
async function generate(dir: string): Promise<void> {
  const marker = path.join(dir, '.complete');
  if (await fs.stat(marker).then(() => true, () => false)) return;
  await fs.rm(dir, { recursive: true, force: true });
  const started = performance.now();
  const jobs = Array.from({ length: IMAGES }, (_, i) => i);
  for (let c = 0; c < CLASSES; c++) await fs.mkdir(path.join(dir, 'train', `c${c}`), { recursive: true });
  await forEachConcurrent(jobs, CONCURRENCY, async (i) => {
    const cls = i % CLASSES;
    let s = (i * 2654435761) >>> 0;
    const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const px = Buffer.alloc(SIZE * SIZE * 3);
    const tint = [(cls * 25) % 256, (cls * 70) % 256, (cls * 140) % 256];
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const o = (y * SIZE + x) * 3;
        const noise = (rand() - 0.5) * 40;
        px[o] = Math.max(0, Math.min(255, (tint[0] + x) / 2 + noise));
        px[o + 1] = Math.max(0, Math.min(255, (tint[1] + y) / 2 + noise));
        px[o + 2] = Math.max(0, Math.min(255, (tint[2] + x + y) / 3 + noise));
      }
    }
    for (let r = 0; r < 3; r++) {
      const w = 20 + Math.floor(rand() * 40), x0 = Math.floor(rand() * (SIZE - w)), y0 = Math.floor(rand() * (SIZE - w)), v = Math.floor(rand() * 256);
      for (let y = y0; y < y0 + w; y++) px.fill(v, (y * SIZE + x0) * 3, (y * SIZE + x0 + w) * 3);
    }
    await sharp(px, { raw: { width: SIZE, height: SIZE, channels: 3 } }).jpeg({ quality: 85 }).toFile(path.join(dir, 'train', `c${cls}`, `${String(i).padStart(5, '0')}.jpg`));
  });
  await fs.writeFile(marker, '');
  console.log(`generated ${IMAGES} JPEGs in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/** The baseline: decode + resize every file with sharp, nothing else, same concurrency as the cache build. */
async function bareDecodeRate(dir: string): Promise<number> {
  const files: string[] = [];
  for (let c = 0; c < CLASSES; c++) for (const f of await fs.readdir(path.join(dir, 'train', `c${c}`))) files.push(path.join(dir, 'train', `c${c}`, f));
  const started = performance.now();
  await forEachConcurrent(files, CONCURRENCY, async (file) => {
    await sharp(file).resize(SIZE, SIZE, { fit: 'fill' }).removeAlpha().toColourspace('srgb').raw().toBuffer();
  });
  return files.length / ((performance.now() - started) / 1000);
}

interface ChildReport {
  peakRssBytes: number;
  decodeSeconds: number;
  cacheSource: string;
  trainingSeconds: number;
  jobSeconds: number;
  featureCache: boolean;
  backend: string;
  valAccuracy: number | null;
}

/** The child: one transfer job through runJob, reporting its own VmHWM at the end. */
async function child(dataRoot: string): Promise<void> {
  const backend = await initBackend((process.env.GRAFT_BACKEND as BackendPreference | undefined) ?? 'auto');
  const layout = new DataLayout(dataRoot);
  let decodeSeconds = NaN;
  let cacheSource = '';
  const started = performance.now();
  const { result } = await runJob(
    {
      type: 'transfer',
      source: { checkpoint: 'mobilenet' },
      freeze: '^(conv1|block)',
      model: { cut: 'gap', head: [{ type: 'dense', units: CLASSES, activation: 'softmax', name: 'head' }] },
      dataset: { name: 'photos', validationSplit: 0.01, limit: TRAIN_LIMIT, preprocess: { scaling: 'symmetric' } },
      training: { epochs: 2, batchSize: 32, seed: 1 },
      output: { checkpoint: `out-${Date.now()}` },
    },
    {
      jobId: 'bench-data',
      layout,
      backend,
      featureCacheMaxBytes: 1 << 30,
      sampleCacheShardBytes: 64 << 20,
      prefetchBatches: 2,
      log: (message, data) => {
        if (message === 'samples' && data) {
          decodeSeconds = Number(data.decodeSeconds);
          cacheSource = String(data.source);
        }
      },
    },
  );
  const status = await fs.readFile('/proc/self/status', 'utf8');
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) * 1024;
  const report: ChildReport = {
    peakRssBytes: hwm,
    decodeSeconds,
    cacheSource,
    trainingSeconds: result.trainingSeconds ?? NaN,
    jobSeconds: (performance.now() - started) / 1000,
    featureCache: result.featureCache ?? false,
    backend,
    valAccuracy: result.metrics.validation?.accuracy ?? null,
  };
  process.stdout.write(`REPORT ${JSON.stringify(report)}\n`);
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return child(process.argv[3]);
  const dataRoot = path.join(ROOT, 'data');
  const layout = new DataLayout(dataRoot);
  await layout.ensure();
  const datasetDir = layout.datasetDir('photos');
  await generate(datasetDir);
  await fs.rm(path.join(datasetDir, CACHE_DIR), { recursive: true, force: true }); // a cold cache every run

  if (!(await fs.stat(layout.checkpointDir('mobilenet')).then(() => true, () => false))) {
    await initBackend('cpu');
    const net = mobileNetV1();
    await saveCheckpoint(layout, 'mobilenet', net, { jobId: 'bench', jobType: 'pretrain', task: 'classification', inputShape: [SIZE, SIZE, 3], preprocess: { resize: 'stretch', channels: 3, scaling: 'symmetric' } });
    net.dispose();
  }
  for (const name of await fs.readdir(layout.checkpointsDir)) if (name.startsWith('out-')) await fs.rm(path.join(layout.checkpointsDir, name), { recursive: true, force: true });

  const bare = await bareDecodeRate(datasetDir);
  console.log(`bare sharp decode: ${bare.toFixed(0)} images/s`);

  const proc = spawn(process.execPath, [__filename, '--child', dataRoot], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
  const line = out.split('\n').find((l) => l.startsWith('REPORT '));
  if (code !== 0 || !line) throw new Error(`the job process failed (exit ${code}):\n${out}`);
  const job = JSON.parse(line.slice('REPORT '.length)) as ChildReport;
  const cacheRate = IMAGES / job.decodeSeconds;

  const figures = {
    images: IMAGES,
    size: `${SIZE}x${SIZE}x3 JPEG`,
    backend: job.backend,
    bareDecodeImagesPerSecond: Math.round(bare),
    cacheBuildImagesPerSecond: Math.round(cacheRate),
    cacheBuildRatio: Math.round((cacheRate / bare) * 100) / 100,
    cacheSource: job.cacheSource,
    peakRssMB: Math.round(job.peakRssBytes / 2 ** 20),
    trainLimit: TRAIN_LIMIT,
    trainingSeconds: Math.round(job.trainingSeconds * 10) / 10,
    jobSeconds: Math.round(job.jobSeconds * 10) / 10,
    featureCache: job.featureCache,
    machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, tfjs ${tf.version.tfjs}`,
    measuredAt: new Date().toISOString(),
  };
  const ok = (b: boolean) => (b ? 'yes' : 'NO');
  const rows = [
    ['figure', 'value', 'target', 'met'],
    [`peak RSS of the job process (VmHWM), MobileNet v1 224x224 frozen, ${IMAGES} JPEGs cached, training limit ${TRAIN_LIMIT}`, `${figures.peakRssMB} MB`, '<= 1536 MB', ok(job.peakRssBytes <= RSS_TARGET_BYTES)],
    ['sample-cache build (decode + resize + write), images/s', String(figures.cacheBuildImagesPerSecond), '', ''],
    ['bare sharp decode + resize loop, images/s', String(figures.bareDecodeImagesPerSecond), '', ''],
    ['cache build / bare decode', `${figures.cacheBuildRatio}x`, `>= ${RATE_TARGET}x`, ok(figures.cacheBuildRatio >= RATE_TARGET)],
    ['whole job (cache build + features + 2 epochs), s', String(figures.jobSeconds), '', ''],
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const fmt = (r: string[]) => `| ${r.map((v, c) => v.padEnd(widths[c])).join(' | ')} |`;
  console.log(fmt(rows[0]));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  rows.slice(1).forEach((r) => console.log(fmt(r)));
  console.log(`\n${figures.machine}, backend ${figures.backend}`);
  const file = path.join(__dirname, '..', '..', 'bench', 'results', 'data.json');
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, JSON.stringify(figures, null, 2) + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
