import { promises as fs } from 'node:fs';
import path from 'node:path';
import { generateOpenApi, OPENAPI_PATH } from '../../scripts/openapi-doc';
import { REPO_ROOT } from '../helpers/env';

describe('openapi/', () => {
  it('holds exactly the document the routes generate (run `npm run openapi` after changing a route)', async () => {
    const committed = JSON.parse(await fs.readFile(path.join(REPO_ROOT, OPENAPI_PATH), 'utf8'));
    const generated = JSON.parse(JSON.stringify(await generateOpenApi()));
    expect(generated).toEqual(committed);
  });

  it('documents the contract routes and the job spec', async () => {
    const doc = (await generateOpenApi()) as {
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { $ref?: string; else?: { $ref?: string; properties: Record<string, unknown> }; properties: Record<string, unknown> } }> } }>>;
      components: { schemas: Record<string, { properties: Record<string, unknown> }> };
    };
    for (const route of ['/v1/jobs', '/v1/jobs/{id}', '/v1/checkpoints', '/v1/checkpoints/{name}', '/v1/datasets', '/v1/datasets/{name}', '/healthz', '/readyz']) {
      expect(doc.paths[route]).toBeDefined();
    }
    // A training spec unless `type` is evaluate or predict (if/then/else).
    const body = doc.paths['/v1/jobs'].post.requestBody!.content['application/json'].schema.else!;
    const spec = body.$ref ? doc.components.schemas[body.$ref.split('/').pop()!] : body;
    expect(Object.keys(spec.properties)).toEqual(['type', 'source', 'freeze', 'model', 'dataset', 'training', 'output']);
  });
});
