import { Queue } from 'bullmq';
import Fastify from 'fastify';
import { Redis } from 'ioredis';

/**
 * The baseline of `npm run bench:api`: the least a service like graft can do per request, on the
 * same Fastify, Redis and BullMQ: POST enqueues one BullMQ job, GET reads one Redis hash (graft's
 * record of the job, so both read the same bytes). Run as
 * its own process, like the real API, with the same log level. Env: PORT, REDIS_URL, QUEUE_NAME,
 * RECORD_PREFIX, LOG_LEVEL.
 */
async function main(): Promise<void> {
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const queueName = process.env.QUEUE_NAME ?? 'bare';
  const queue = new Queue(queueName, { connection: new Redis(redisUrl, { maxRetriesPerRequest: null }) });
  const redis = new Redis(redisUrl);
  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } });
  let n = 0;
  app.post('/jobs', async (request, reply) => {
    const id = `bare-${process.pid}-${n++}`;
    await queue.add('train', { jobId: id, spec: request.body }, { jobId: id, removeOnComplete: true });
    return reply.status(202).send({ id });
  });
  // RECORD_PREFIX points at graft's own job hashes, so both servers read the same bytes.
  const recordPrefix = process.env.RECORD_PREFIX ?? `${queueName}:record:`;
  app.get<{ Params: { id: string } }>('/jobs/:id', async (request) => redis.hgetall(recordPrefix + request.params.id));
  await app.listen({ port: Number(process.env.PORT ?? 3999), host: '127.0.0.1' });
  const stop = async () => {
    await app.close();
    await queue.close();
    redis.disconnect();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

void main();
