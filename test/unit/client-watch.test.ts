import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { InvalidArgumentError, type BerthError } from '../../src/client/errors.js';
import { engineUnderTest, serveOverGrpc } from '../harness/engine-harness.js';

/** A task event with a long reason: a few of them fill a client's receive window. */
const bulky = (i: number) => ({ type: 'task' as const, knownStatus: 'RUNNING' as const, desiredStatus: 'RUNNING' as const, reason: `${i} ${'x'.repeat(8 * 1024)}` });

describe("the client's watch (src/client) against the engine served over gRPC (fake runtime)", () => {
  it('a watcher too slow for the agent is cut off, resumes where it was, and delivers each event once, in order', async () => {
    const t = await engineUnderTest({ maxWatcherLag: 100 });
    const served = await serveOverGrpc(t, {});
    try {
      const COUNT = 1500;
      const first = t.events.latestSequence() + 1;
      const errors: (BerthError | undefined)[] = [];
      const sequences: number[] = [];
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let firstSeen!: () => void;
      const seenOne = new Promise<void>((resolve) => (firstSeen = resolve));
      const consumer = (async () => {
        for await (const item of served.berth.watch({ fromSequence: first, initialBackoffMs: 10, onReconnect: ({ error }) => errors.push(error) })) {
          if (item.kind !== 'event') continue;
          sequences.push(item.event.sequence);
          if (sequences.length === 1) {
            firstSeen();
            // The caller stops reading: the agent's writes back up until it ends the stream.
            await gate;
          }
          if (sequences.length === COUNT) break;
        }
      })();
      t.events.append('synthetic', bulky(0));
      await seenOne;
      for (let i = 1; i < COUNT; i++) t.events.append('synthetic', bulky(i));
      release();
      await consumer;
      assert.deepEqual(
        sequences,
        Array.from({ length: COUNT }, (_, i) => first + i),
      );
      const slow = errors.filter((e) => e?.code === status.RESOURCE_EXHAUSTED);
      assert.ok(slow.length >= 1, `the stream was ended for being too slow (${errors.map((e) => e?.reason).join(', ')})`);
      assert.equal(slow[0]!.reason, 'WATCHER_TOO_SLOW');
    } finally {
      await served.stop();
    }
  });

  it('fails at once on an error another attempt cannot mend, and ends quietly when its signal aborts', async () => {
    const t = await engineUnderTest();
    const served = await serveOverGrpc(t, {});
    try {
      const tooMany = Array.from({ length: 10_000 }, (_, i) => `task-${i}`);
      await assert.rejects(
        (async () => {
          for await (const item of served.berth.watch({ taskIds: tooMany })) void item;
        })(),
        (error) => error instanceof InvalidArgumentError && error.fieldViolations.some((v) => v.field === 'task_ids'),
      );
      const stop = new AbortController();
      const items: string[] = [];
      const watch = (async () => {
        for await (const item of served.berth.watch({ snapshot: true, signal: stop.signal })) {
          items.push(item.kind);
          stop.abort();
        }
      })();
      await watch;
      assert.deepEqual(items, ['snapshot']);
    } finally {
      await served.stop();
    }
  });

  it('opens a stream that stays silent past idleTimeoutMs again, and loses nothing', async () => {
    const t = await engineUnderTest();
    // Heartbeats every 10 s: a watch that expects something every 200 ms takes the stream for dead.
    const served = await serveOverGrpc(t, { events: { heartbeatInterval: '10s' } });
    try {
      const first = t.events.latestSequence() + 1;
      const reconnects: (BerthError | undefined)[] = [];
      let reconnected!: () => void;
      const twice = new Promise<void>((resolve) => (reconnected = resolve));
      const sequences: number[] = [];
      const watch = (async () => {
        const items = served.berth.watch({
          fromSequence: first,
          idleTimeoutMs: 200,
          onReconnect: ({ error }) => {
            reconnects.push(error);
            if (reconnects.length === 2) reconnected();
          },
        });
        for await (const item of items) {
          if (item.kind === 'event') sequences.push(item.event.sequence);
          if (sequences.length === 3) break;
        }
      })();
      await twice;
      for (let i = 0; i < 3; i++) t.events.append('synthetic', { type: 'removed' });
      await watch;
      assert.deepEqual(sequences, [first, first + 1, first + 2]);
      assert.ok(reconnects.every((e) => e?.code === status.CANCELLED));
    } finally {
      await served.stop();
    }
  });
});
