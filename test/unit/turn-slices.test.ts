import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, stat } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TurnSlices } from '../../src/server/turn-slices.js';

/** Keeps the thread busy for `ms` (a handler's work). */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe('TurnSlices (unary handlers in slices of an event-loop turn)', () => {
  it('runs a burst in order, and lets I/O and timers in between once a slice is spent', async () => {
    const slices = new TurnSlices(5);
    const BURST = 40;
    const order: string[] = [];
    const timerFired = new Promise<void>((resolve) =>
      setTimeout(() => {
        order.push('timer');
        resolve();
      }, 0),
    );
    // Something a poll of the loop delivers: the completion of a call in the thread pool.
    const ioDone = new Promise<void>((resolve) =>
      stat(import.meta.filename, () => {
        order.push('io');
        resolve();
      }),
    );
    const done = new Promise<void>((resolve) => {
      for (let i = 0; i < BURST; i++) {
        slices.run(() => {
          busy(2);
          order.push(`work ${i}`);
          if (i === BURST - 1) resolve();
        });
      }
    });
    const ranAtOnce = order.length;
    await Promise.all([done, timerFired, ioDone]);
    assert.ok(ranAtOnce >= 1 && ranAtOnce <= 4, `the first slice ran ${ranAtOnce} handlers at once (slice 5 ms, 2 ms each)`);
    const work = order.filter((o) => o.startsWith('work'));
    assert.deepEqual(
      work,
      Array.from({ length: BURST }, (_, i) => `work ${i}`),
      'in the order they came',
    );
    assert.ok(order.indexOf('timer') < order.indexOf(`work ${BURST - 1}`), `the timer waited for the whole burst: ${order.join(', ')}`);
    assert.ok(order.indexOf('io') < order.indexOf(`work ${BURST - 1}`), `the I/O completion waited for the whole burst: ${order.join(', ')}`);
  });

  it('lets the loop poll between the slice of a burst read from a socket and the next slice', async () => {
    // The handlers of a request run where grpc-js reads it: in the loop's poll phase. What a
    // setImmediate made there runs before the loop polls again, so the next slice must wait one more.
    // A unix socket: a write is in the reader's queue when it returns.
    const dir = mkdtempSync(join(tmpdir(), 'berth-turn-slices-'));
    const server = createServer();
    server.listen(join(dir, 'socket'));
    await once(server, 'listening');
    const client = connect(join(dir, 'socket'));
    const [accepted] = (await once(server, 'connection')) as [Socket];
    try {
      const slices = new TurnSlices(5);
      const BURST = 12;
      const order: string[] = [];
      let inTrigger = false;
      const done = new Promise<void>((resolve) => {
        let reads = 0;
        accepted.on('data', () => {
          reads++;
          if (reads > 1) {
            order.push('io');
            return;
          }
          inTrigger = true;
          for (let i = 0; i < BURST; i++) {
            slices.run(() => {
              // The first handler makes the socket readable again: a completion the next poll finds.
              if (i === 0) client.write('b');
              busy(2);
              order.push(inTrigger ? `first slice ${i}` : `later ${i}`);
              if (i === BURST - 1) resolve();
            });
          }
          inTrigger = false;
        });
      });
      client.write('a');
      await done;
      const firstLater = order.findIndex((o) => o.startsWith('later'));
      assert.ok(firstLater > 0 && firstLater < BURST, `a first slice ran and the rest waited: ${order.join(', ')}`);
      assert.ok(order.indexOf('io') !== -1 && order.indexOf('io') < firstLater, `the read ready after the first slice came before the next: ${order.join(', ')}`);
    } finally {
      client.destroy();
      accepted.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs a handler at once when the turn has time left and nothing waits', () => {
    const slices = new TurnSlices(5);
    let ran = false;
    slices.run(() => {
      ran = true;
    });
    assert.equal(ran, true);
  });

  it('goes on with the rest of a burst after a handler threw', async () => {
    const errors: unknown[] = [];
    const slices = new TurnSlices(1, (error) => errors.push(error));
    const ran: number[] = [];
    const done = new Promise<void>((resolve) => {
      slices.run(() => busy(2));
      slices.run(() => {
        throw new Error('handler failed');
      });
      for (let i = 0; i < 3; i++)
        slices.run(() => {
          ran.push(i);
          if (i === 2) resolve();
        });
    });
    await done;
    assert.deepEqual(
      errors.map((e) => (e as Error).message),
      ['handler failed'],
    );
    assert.deepEqual(ran, [0, 1, 2]);
  });
});
