import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { WarmNamespacePool, type WarmNamespaceMaker } from '../../src/engine/network/warm-pool.js';
import type { CniAttachmentRecord } from '../../src/engine/store/records.js';

/** Makes namespaces when the test says so; counts what is made, in flight and released. */
class HeldMaker implements WarmNamespaceMaker {
  made = 0;
  inFlight = 0;
  maxInFlight = 0;
  readonly released: string[] = [];
  failNext = 0;
  private readonly pending: (() => void)[] = [];
  private waiters: (() => void)[] = [];

  makeWarm(): Promise<CniAttachmentRecord> {
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.wake();
    return new Promise((resolve, reject) =>
      this.pending.push(() => {
        this.inFlight -= 1;
        if (this.failNext > 0) {
          this.failNext -= 1;
          reject(new Error('ADD failed'));
          return;
        }
        this.made += 1;
        resolve({ containerId: `warm-${this.made}` } as CniAttachmentRecord);
      }),
    );
  }

  async release(attachment: CniAttachmentRecord): Promise<void> {
    this.released.push(attachment.containerId);
  }

  /** Waits until a make is asked for, then lets it finish. */
  async finishOne(): Promise<void> {
    while (this.pending.length === 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.pending.shift()!();
    await new Promise((resolve) => setImmediate(resolve));
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}

const log = pino({ level: 'silent' });

describe('warm network namespaces', () => {
  it('makes them one at a time up to the size, and makes one again for each taken', async () => {
    const maker = new HeldMaker();
    const pool = new WarmNamespacePool(2, maker, log, 0);
    assert.equal(pool.take(), undefined, 'none before the pool starts');
    pool.start();
    await maker.finishOne();
    await maker.finishOne();
    assert.equal(pool.available, 2);
    assert.equal(maker.inFlight, 0, 'full: no more made');
    assert.equal(pool.take()?.containerId, 'warm-1');
    assert.equal(maker.inFlight, 1, 'one made in its place');
    assert.equal(pool.take()?.containerId, 'warm-2');
    assert.equal(pool.take(), undefined);
    await maker.finishOne();
    await maker.finishOne();
    assert.equal(pool.available, 2);
    assert.equal(maker.maxInFlight, 1, 'one at a time');
    await pool.stop();
    assert.deepEqual(maker.released.sort(), ['warm-3', 'warm-4'], 'the ones not taken are deleted at stop');
    assert.equal(pool.available, 0);
  });

  it('a ready one found broken leaves the pool and another is made in its place', async () => {
    const maker = new HeldMaker();
    const pool = new WarmNamespacePool(2, maker, log, 0);
    pool.start();
    await maker.finishOne();
    await maker.finishOne();
    assert.equal(
      pool.discard((a) => a.containerId === 'warm-9'),
      undefined,
      'not in the pool: nothing taken out',
    );
    assert.equal(maker.inFlight, 0);
    assert.equal(pool.discard((a) => a.containerId === 'warm-1')?.containerId, 'warm-1');
    assert.equal(pool.available, 1);
    assert.equal(maker.inFlight, 1, 'one made in its place');
    await maker.finishOne();
    assert.equal(pool.available, 2);
    await pool.stop();
    assert.deepEqual(maker.released.sort(), ['warm-2', 'warm-3'], "the discarded one is the caller's to delete");
  });

  it('after a failure, tries again later rather than at once', async () => {
    const maker = new HeldMaker();
    const pool = new WarmNamespacePool(1, maker, log, 0);
    maker.failNext = 1;
    pool.start();
    await maker.finishOne();
    assert.equal(pool.available, 0);
    assert.equal(maker.inFlight, 0, 'not retried at once');
    // A task taking from the empty pool does not hurry the retry either.
    assert.equal(pool.take(), undefined);
    assert.equal(maker.inFlight, 0);
    await maker.finishOne(); // the retry, a second later
    assert.equal(pool.available, 1);
    await pool.stop();
  });

  it('makes none again while a task sets up a network of its own', async () => {
    const maker = new HeldMaker();
    const pool = new WarmNamespacePool(1, maker, log, 0);
    pool.start();
    await maker.finishOne();
    pool.hold();
    assert.ok(pool.take());
    assert.equal(maker.inFlight, 0, 'held: not made again yet');
    pool.hold();
    pool.letGo();
    assert.equal(maker.inFlight, 0, 'still one hold');
    pool.letGo();
    assert.equal(maker.inFlight, 1, 'made again once every hold is let go');
    await maker.finishOne();
    assert.equal(pool.available, 1);
    await pool.stop();
  });

  it('makes one again only once launches pause: not while namespaces are being taken', async () => {
    const maker = new HeldMaker();
    const pool = new WarmNamespacePool(2, maker, log, 50);
    pool.start();
    await maker.finishOne();
    await maker.finishOne();
    assert.ok(pool.take());
    assert.ok(pool.take());
    assert.equal(maker.inFlight, 0, 'not during the burst');
    await maker.finishOne(); // once 50 ms passed without a launch
    await maker.finishOne();
    assert.equal(pool.available, 2);
    await pool.stop();
  });

  it('size 0: nothing is ever made', async () => {
    const maker = new HeldMaker();
    const pool = new WarmNamespacePool(0, maker, log, 0);
    pool.start();
    assert.equal(pool.take(), undefined);
    assert.equal(maker.inFlight, 0);
    await pool.stop();
  });

  it('a namespace whose making ends after stop is deleted, not kept', async () => {
    const maker = new HeldMaker();
    const pool = new WarmNamespacePool(1, maker, log, 0);
    pool.start();
    const stopped = pool.stop();
    await maker.finishOne();
    await stopped;
    assert.deepEqual(maker.released, ['warm-1']);
    assert.equal(pool.available, 0);
  });
});
