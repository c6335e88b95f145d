import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { retry, retryTransient } from '../../src/engine/retry.js';
import { syncAction } from '../../src/engine/runtime-sync.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import type { ContainerInfo } from '../../src/runtime/types.js';

describe('retry', () => {
  it('tries again with back-off until it succeeds, telling each failure', async () => {
    let calls = 0;
    const told: [number, number][] = [];
    const result = await retry(
      { attempts: Infinity, initialDelayMs: 1, maxDelayMs: 4 },
      async () => {
        if (++calls < 5) throw new Error(`fail ${calls}`);
        return 'done';
      },
      { onRetry: (_error, attempt, delayMs) => told.push([attempt, delayMs]) },
    );
    assert.equal(result, 'done');
    assert.deepEqual(told, [
      [1, 1],
      [2, 2],
      [3, 4],
      [4, 4],
    ]);
  });

  it('stops at the attempts, at an error not worth retrying, and when the signal aborts during a delay', async () => {
    let calls = 0;
    await assert.rejects(
      retry({ attempts: 3, initialDelayMs: 1, maxDelayMs: 1 }, async () => Promise.reject(new Error(`try ${++calls}`))),
      /try 3/,
    );
    await assert.rejects(
      retryTransient({ attempts: 5, initialDelayMs: 1, maxDelayMs: 1 }, async () => Promise.reject(new RuntimeError('invalid', 'create', 'bad'))),
      /bad/,
    );
    const abort = new AbortController();
    const started = Date.now();
    const waiting = retry({ attempts: Infinity, initialDelayMs: 60_000, maxDelayMs: 60_000 }, async () => Promise.reject(new Error('down')), { signal: abort.signal, onRetry: () => abort.abort() });
    await assert.rejects(waiting, /down/);
    assert.ok(Date.now() - started < 10_000, 'the delay ended with the signal');
  });
});

describe('synchronization with the runtime: what to do with one container', () => {
  const listed = (state: ContainerInfo['state']) => ({ state }) as ContainerInfo;
  it('inspects what may have changed, applies what needs no detail, leaves what agrees', () => {
    assert.equal(syncAction('RUNNING', true, listed('running')), 'none');
    assert.equal(syncAction('CREATED', true, listed('running')), 'inspect', 'the start time and ports');
    assert.equal(syncAction('STOPPED', true, listed('running')), 'apply');
    assert.equal(syncAction('RUNNING', true, listed('exited')), 'inspect', 'the exit code');
    assert.equal(syncAction('STOPPED', true, listed('exited')), 'none');
    assert.equal(syncAction('PULLED', false, listed('created')), 'apply', 'created before a crash, never recorded');
    assert.equal(syncAction('RUNNING', true, undefined), 'inspect', 'vanished, or listed too late');
    assert.equal(syncAction('PULLED', false, undefined), 'none', 'never created');
    assert.equal(syncAction('STOPPED', true, undefined), 'none');
  });
});
