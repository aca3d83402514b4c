import { promises as fs } from 'node:fs';
import path from 'node:path';
import { generateOpenApi, OPENAPI_PATH } from './openapi-doc';

/** `npm run openapi`: regenerates the committed document (a test fails when it drifts). */
async function main(): Promise<void> {
  const doc = await generateOpenApi();
  const file = path.join(__dirname, '..', '..', OPENAPI_PATH);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, JSON.stringify(doc, null, 2) + '\n');
  console.log(`wrote ${OPENAPI_PATH} (${Object.keys(doc.paths as object).length} paths)`);
}

void main();
