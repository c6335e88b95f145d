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
  it('makes them one at a time up to the size, and makes one again for each taken once its launch ended', async () => {
    const maker = new HeldMaker();
    const pool = new WarmNamespacePool(2, maker, log, 0);
    assert.equal(pool.take('t0'), undefined, 'none before the pool starts');
    pool.start();
    await maker.finishOne();
    await maker.finishOne();
    assert.equal(pool.available, 2);
    assert.equal(maker.inFlight, 0, 'full: no more made');
    assert.equal(pool.take('t1')?.containerId, 'warm-1');
    assert.equal(maker.inFlight, 0, 'not while the task that took it launches');
    pool.launchEnded('t1');
    assert.equal(maker.inFlight, 1, 'one made in its place');
    assert.equal(pool.take('t2')?.containerId, 'warm-2');
    assert.equal(pool.take('t3'), undefined);
    await maker.finishOne();
    pool.launchEnded('t2');
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
    assert.equal(pool.take('t1'), undefined);
    assert.equal(maker.inFlight, 0);
    await maker.finishOne(); // the retry, a second later
    assert.equal(pool.available, 1);
    await pool.stop();
  });

  it('makes none again while a task that sets up a network of its own launches, nor while one that took a namespace does', async () => {
    const maker = new HeldMaker();
    const pool = new WarmNamespacePool(1, maker, log, 0);
    pool.start();
    await maker.finishOne();
    pool.launchBegan('own');
    assert.ok(pool.take('taker'));
    assert.equal(maker.inFlight, 0, 'two launches under way: not made again yet');
    pool.launchBegan('own'); // a second call for the same launch holds nothing more
    pool.launchEnded('own');
    assert.equal(maker.inFlight, 0, 'still one launch under way');
    pool.launchEnded('own');
    pool.launchEnded('unknown');
    assert.equal(maker.inFlight, 0, 'a launch ended twice, or never begun, ends no other');
    pool.launchEnded('taker');
    assert.equal(maker.inFlight, 1, 'made again once every launch ended');
    await maker.finishOne();
    assert.equal(pool.available, 1);
    await pool.stop();
  });

  it('a launch never said to end holds the pool for maxLaunchHoldMs at most', async () => {
    const maker = new HeldMaker();
    const pool = new WarmNamespacePool(1, maker, log, 0, 50);
    pool.start();
    await maker.finishOne();
    assert.ok(pool.take('lost'));
    assert.equal(maker.inFlight, 0);
    await maker.finishOne(); // asked for once the 50 ms hold ran out
    assert.equal(pool.available, 1);
    await pool.stop();
  });

  it('waits quietMs after a launch ended, so that the next launch of a sequence comes first', async () => {
    const maker = new HeldMaker();
    const pool = new WarmNamespacePool(2, maker, log, 50);
    pool.start();
    await maker.finishOne();
    await maker.finishOne();
    assert.ok(pool.take('first'));
    await new Promise((resolve) => setTimeout(resolve, 80)); // a launch longer than quietMs
    assert.equal(maker.inFlight, 0, 'not during the launch, however long');
    pool.launchEnded('first');
    assert.equal(maker.inFlight, 0, 'not at once when it ends');
    assert.ok(pool.take('second'));
    pool.launchEnded('second');
    await maker.finishOne(); // once 50 ms passed without a launch beginning or ending
    await maker.finishOne();
    assert.equal(pool.available, 2);
    await pool.stop();
  });

  it('makes one again only once launches pause: not while namespaces are being taken', async () => {
    const maker = new HeldMaker();
    const pool = new WarmNamespacePool(2, maker, log, 50);
    pool.start();
    await maker.finishOne();
    await maker.finishOne();
    assert.ok(pool.take('a'));
    assert.ok(pool.take('b'));
    pool.launchEnded('a');
    assert.equal(maker.inFlight, 0, 'not during the burst');
    pool.launchEnded('b');
    await maker.finishOne(); // once 50 ms passed without a launch
    await maker.finishOne();
    assert.equal(pool.available, 2);
    await pool.stop();
  });

  it('size 0: nothing is ever made', async () => {
    const maker = new HeldMaker();
    const pool = new WarmNamespacePool(0, maker, log, 0);
    pool.start();
    assert.equal(pool.take('t1'), undefined);
    pool.launchBegan('t2');
    pool.launchEnded('t2');
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
