import type { Server } from 'node:http';
import request from 'supertest';
import { waitFor } from './env';

/** A small supervised pretrain job (seed-network shaped) on the `digits` test dataset. */
export const classifierSpec = (output: string, epochs: number, seed = 1) => ({
  type: 'pretrain',
  model: { architecture: 'conv-classifier', options: { filters: [8, 16] } },
  dataset: { name: 'digits', validationSplit: 0.1 },
  training: { epochs, batchSize: 32, seed },
  output: { checkpoint: output },
});

const FINISHED = ['succeeded', 'failed', 'cancelled'];

/** Polls GET /v1/jobs/{id} until the job has ended; `context()` is added to a timeout's message. */
export function waitForJobEnd(target: Server | string, id: string, timeoutMs = 120_000, context: () => string = () => '') {
  return waitFor(
    async () => {
      const res = await request(target).get(`/v1/jobs/${id}`);
      return FINISHED.includes(res.body.status) ? res.body : null;
    },
    timeoutMs,
    `job ${id} to finish ${context()}`,
    100,
  );
}
