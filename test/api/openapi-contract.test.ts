import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { generateOpenApi, OPENAPI_PATH } from '../../scripts/openapi-doc';
import { OPERATION_IDS } from '../../src/api/openapi-contract';
import { REPO_ROOT } from '../helpers/env';

type Operation = { operationId?: string; security?: unknown[]; responses: Record<string, unknown>; requestBody?: { content: Record<string, { schema: { $ref?: string } }> } };
type Doc = {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { properties?: Record<string, { $ref?: string }> }>; securitySchemes?: Record<string, { type: string; scheme?: string }> };
  servers: unknown[];
};

/** The OpenAPI document as a client contract: stable operation ids, shared components, lint clean. */
describe('OpenAPI contract', () => {
  let doc: Doc;
  beforeAll(async () => {
    doc = (await generateOpenApi()) as unknown as Doc;
  });
  const operations = () => Object.entries(doc.paths).flatMap(([p, item]) => Object.entries(item).map(([method, op]) => ({ key: `${method.toUpperCase()} ${p}`, op })));

  it('names every operation from OPERATION_IDS (a new route needs a stable id there), each once', () => {
    const ops = operations();
    expect(ops.map((o) => o.key).sort()).toEqual(Object.keys(OPERATION_IDS).sort());
    for (const { key, op } of ops) expect(op.operationId).toBe(OPERATION_IDS[key]);
    expect(new Set(ops.map((o) => o.op.operationId)).size).toBe(ops.length);
  });

  it('declares servers, security (a bearer key on every /v1 operation, none on health) and a 4xx answer on every operation', () => {
    expect(doc.servers.length).toBeGreaterThan(0);
    expect(doc.components.securitySchemes).toEqual({ bearerAuth: expect.objectContaining({ type: 'http', scheme: 'bearer' }) });
    for (const { key, op } of operations()) {
      expect([key, op.security]).toEqual([key, key.split(' ')[1].startsWith('/v1/') ? [{ bearerAuth: [] }] : []]);
      expect([key, Object.keys(op.responses).some((c) => c.startsWith('4'))]).toEqual([key, true]);
    }
  });

  it('refers to the job spec and the job instead of inlining them', () => {
    // A training spec, or (type evaluate | predict) a job that uses a checkpoint.
    const submitted = { $ref: '#/components/schemas/JobSpec' };
    const use = { $ref: '#/components/schemas/UseJobSpec' };
    for (const route of ['/v1/jobs', '/v1/plans']) expect(doc.paths[route].post.requestBody!.content['application/json'].schema).toMatchObject({ then: use, else: submitted });
    expect(doc.components.schemas.Job.properties!.spec).toEqual({ anyOf: [submitted, use] });
    expect(JSON.stringify(doc).split('"earlyStopping"').length - 1).toBe(1);
  });

  it('passes redocly lint with the recommended rules', async () => {
    const redocly = path.join(REPO_ROOT, 'node_modules', '.bin', 'redocly');
    const { stdout, stderr } = await promisify(execFile)(redocly, ['lint', OPENAPI_PATH, '--format=summary'], { cwd: REPO_ROOT }).catch((err: { stdout: string; stderr: string }) => {
      throw new Error(`redocly lint failed:\n${err.stdout}\n${err.stderr}`);
    });
    expect(stdout + stderr).toMatch(/valid/i);
  }, 60_000);
});
