import assert from 'node:assert/strict';
import { stat } from 'node:fs';
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
