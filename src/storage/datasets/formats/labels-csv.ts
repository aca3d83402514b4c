import { promises as fs } from 'node:fs';
import path from 'node:path';
import { datasetInvalid, type DatasetFormat, type DetectContext } from '../types';
import { describe, IMAGE_EXTENSIONS, open, validate, type ImageFolderFiles } from './image-folder';

/**
 * A flat folder of images with a `labels.csv` beside it: one `path,label` row per image (a
 * `path,label` header is optional), paths relative to the dataset folder. An alternative to
 * class folders when the labels come from a spreadsheet. Classes are the sorted distinct labels;
 * everything is the training split. Once listed, it is read exactly like an image folder.
 */
export const LABELS_FILE = 'labels.csv';
/** Rows of labels.csv at most (a listing, not data: keeps a hostile file from exhausting memory). */
const MAX_ROWS = 1_000_000;

async function detect({ dir, name, entries }: DetectContext): Promise<ImageFolderFiles | null> {
  if (!entries.some((e) => e.isFile() && e.name === LABELS_FILE)) return null;
  const text = await fs.readFile(path.join(dir, LABELS_FILE), 'utf8');
  const rows = parseCsv(text, name);
  const byClass = new Map<string, string[]>();
  const seen = new Set<string>();
  for (const [line, [file, label]] of rows) {
    const rel = path.normalize(file);
    if (path.isAbsolute(rel) || rel.startsWith('..') || rel.split(path.sep).some((p) => p.startsWith('.'))) {
      throw datasetInvalid(name, `${LABELS_FILE} line ${line}: ${JSON.stringify(file)} must be a path inside the dataset folder (no "..", no hidden parts).`);
    }
    if (!IMAGE_EXTENSIONS.has(path.extname(rel).toLowerCase())) {
      throw datasetInvalid(name, `${LABELS_FILE} line ${line}: ${JSON.stringify(file)} is not an image (${[...IMAGE_EXTENSIONS].join(', ')}).`);
    }
    if (seen.has(rel)) throw datasetInvalid(name, `${LABELS_FILE} line ${line}: ${JSON.stringify(file)} is listed twice.`);
    seen.add(rel);
    const stat = await fs.lstat(path.join(dir, rel)).catch(() => null);
    if (!stat?.isFile()) throw datasetInvalid(name, `${LABELS_FILE} line ${line}: ${JSON.stringify(file)} is not a file in the dataset.`);
    byClass.set(label, [...(byClass.get(label) ?? []), rel]);
  }
  if (byClass.size === 0) throw datasetInvalid(name, `${LABELS_FILE} lists no images: expected rows of path,label.`);
  const classes = [...byClass.keys()].sort();
  return { format: 'labels-csv', name, dir, classes, train: classes.map((c) => byClass.get(c)!.sort()), test: null };
}

/** [line number, [path, label]] per data row; quoted fields may hold commas and doubled quotes. */
function parseCsv(text: string, name: string): [number, [string, string]][] {
  const out: [number, [string, string]][] = [];
  const lines = text.split(/\r?\n/);
  if (lines.length > MAX_ROWS) throw datasetInvalid(name, `${LABELS_FILE} has more than ${MAX_ROWS} rows.`);
  lines.forEach((raw, i) => {
    if (raw.trim() === '') return;
    const fields = splitCsvLine(raw);
    if (i === 0 && fields[0]?.trim().toLowerCase() === 'path' && fields[1]?.trim().toLowerCase() === 'label') return;
    if (fields.length !== 2 || fields[0].trim() === '' || fields[1].trim() === '') {
      throw datasetInvalid(name, `${LABELS_FILE} line ${i + 1}: expected path,label, got ${JSON.stringify(raw.slice(0, 200))}.`);
    }
    out.push([i + 1, [fields[0].trim(), fields[1].trim()]]);
  });
  return out;
}

function splitCsvLine(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      fields.push(field);
      field = '';
    } else field += ch;
  }
  fields.push(field);
  return fields;
}

export const labelsCsvFormat: DatasetFormat<ImageFolderFiles> = {
  name: 'labels-csv',
  noun: 'a labels.csv',
  expected: 'a labels.csv of path,label rows beside the images it lists',
  detect,
  describe: async (files, limits) => ({ ...(await describe(files, limits)), format: 'labels-csv' }),
  validate,
  open,
};
