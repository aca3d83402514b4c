// Copies the dashboard's static files next to its compiled modules (dist/public), with the
// browser builds of uPlot and openapi-fetch the page's import map points at. Run by `npm run build`.
import { cpSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'public');
mkdirSync(join(out, 'vendor'), { recursive: true });
for (const file of ['index.html', 'style.css']) cpSync(join(root, 'dashboard', file), join(out, file));
const vendor = {
  'uPlot.esm.js': 'node_modules/uplot/dist/uPlot.esm.js',
  'uPlot.min.css': 'node_modules/uplot/dist/uPlot.min.css',
  'openapi-fetch.mjs': 'node_modules/openapi-fetch/dist/index.mjs',
};
for (const [name, from] of Object.entries(vendor)) cpSync(join(root, from), join(out, 'vendor', name));
