import closeWithGrace from 'close-with-grace';
import { buildApp } from './api/app';
import { createApiLogger } from './auth/redact';
import { loadConfigOrExit } from './config';
import { createServices } from './api/services';

/** The only file that listens. */
async function main(): Promise<void> {
  const config = loadConfigOrExit();
  // One logger for the process: Fastify's (each request logs through a child with its id) and
  // the services' (children of the same instance).
  const logger = createApiLogger(config.LOG_LEVEL);
  // One loud line: an API without keys is anyone-on-this-machine's admin.
  if (config.GRAFT_AUTH === 'off') logger.warn(`GRAFT_AUTH=off: authentication is DISABLED, every caller on ${config.HOST} is the admin of the default tenant`);
  const services = await createServices(config, logger.child({ component: 'services' }), { warmPool: true });
  const app = await buildApp({ config, deps: services.deps, logger });

  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err) logger.error({ err }, 'closing after an error');
    else logger.info({ signal }, 'shutting down');
    await app.close();
    await services.close();
  });

  await app.listen({ port: config.PORT, host: config.HOST });
}

void main();
