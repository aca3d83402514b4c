import { existsSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/**
 * Where `npm run build` puts the dashboard (dist/public): next to the compiled API
 * (dist/src/api → dist/public), or under dist/ when the API runs from its TypeScript sources
 * (tests). null when it was never built.
 */
export function findDashboardDir(): string | null {
  const candidates = [path.resolve(__dirname, '..', '..', 'public'), path.resolve(__dirname, '..', '..', 'dist', 'public')];
  return candidates.find((dir) => existsSync(path.join(dir, 'index.html'))) ?? null;
}

/**
 * Serves the dashboard's files at / (index.html at /). `wildcard: false` gives each built file
 * its own route at start-up, so unknown paths still reach graft's JSON 404.
 */
export async function registerDashboard(app: FastifyInstance, dir: string | null = findDashboardDir()): Promise<void> {
  if (!dir) {
    app.log.warn('no dashboard at dist/public (run npm run build); / is not served');
    return;
  }
  await app.register(fastifyStatic, { root: dir, prefix: '/', wildcard: false, index: 'index.html', cacheControl: true, maxAge: 0 });
}
