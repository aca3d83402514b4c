import { Redis } from 'ioredis';
import pino from 'pino';
import { EventHub, compareIds } from '../../src/api/event-hub';
import type { JobEvent } from '../../src/jobs/job-events';
import { TEST_REDIS_URL, uniqueQueueName, waitFor } from '../helpers/env';

/** The hub against the real Redis: one blocking reader, re-armed when the watched set changes. */
describe('EventHub', () => {
  const prefix = `graft:${uniqueQueueName('hub')}:events`;
  let control: Redis;
  let hub: EventHub;
  let connections = 0;

  beforeAll(() => {
    control = new Redis(TEST_REDIS_URL);
    // A long block: a new stream must not wait for the running read to time out.
    hub = new EventHub({ connect: () => (connections++, new Redis(TEST_REDIS_URL)), control, logger: pino({ level: 'silent' }), blockMs: 30_000 });
  });

  afterAll(async () => {
    await hub.close();
    const keys = await control.keys(`${prefix}:*`);
    if (keys.length) await control.del(...keys);
    await control.quit();
  });

  const add = (key: string, message: string) => control.xadd(key, '*', 'level', 'info', 'type', 'message', 'message', message, 'data', 'null');
  const collector = () => {
    const got: JobEvent[] = [];
    return { got, subscriber: { onEvents: (events: JobEvent[]) => got.push(...events) } };
  };

  it('re-arms the blocking read at once when a stream joins, and reads each stream from each cursor', async () => {
    const a = collector();
    const subA = hub.subscribe(`${prefix}:a`, '0-0', a.subscriber);
    await add(`${prefix}:a`, 'a1');
    await waitFor(async () => a.got.length === 1, 2000, 'a1');
    await new Promise((r) => setTimeout(r, 200)); // the hub is now blocked on stream a only

    const b = collector();
    const started = Date.now();
    const subB = hub.subscribe(`${prefix}:b`, '0-0', b.subscriber);
    await add(`${prefix}:b`, 'b1');
    await waitFor(async () => b.got.length === 1, 3000, 'b1 (the read re-armed)');
    expect(Date.now() - started).toBeLessThan(3000);

    // A late subscriber of a with its own cursor gets only what follows it; the first gets no duplicate.
    const first = a.got[0].id;
    await add(`${prefix}:a`, 'a2');
    const late = collector();
    const subLate = hub.subscribe(`${prefix}:a`, first, late.subscriber);
    await waitFor(async () => a.got.length === 2 && late.got.length === 1, 3000, 'a2 to both');
    await new Promise((r) => setTimeout(r, 200));
    expect(a.got.map((e) => e.message)).toEqual(['a1', 'a2']);
    expect(late.got.map((e) => e.message)).toEqual(['a2']);

    expect([hub.subscriberCount, hub.streamCount]).toEqual([3, 2]);
    for (const s of [subA, subB, subLate, subLate]) s.close(); // closing twice is harmless
    expect([hub.subscriberCount, hub.streamCount]).toEqual([0, 0]);
    expect(connections).toBe(1);
  });

  it('orders stream ids numerically', () => {
    expect(compareIds('10-0', '9-5')).toBe(1);
    expect(compareIds('5-10', '5-9')).toBe(1);
    expect(compareIds('5-1', '5-1')).toBe(0);
    expect(compareIds('0-0', '1700000000000-0')).toBe(-1);
  });
});
