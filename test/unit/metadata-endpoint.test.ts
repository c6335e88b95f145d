import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { TaskSnapshot } from '../../src/engine/model/task-snapshot.js';
import { MetadataServer } from '../../src/metadata/metadata-server.js';
import { MetadataTokens } from '../../src/metadata/metadata-tokens.js';
import { RateLimiter } from '../../src/metadata/rate-limiter.js';
import { freeLoopbackPort } from '../harness/processes.js';

describe('metadata endpoint rate limit and tokens', () => {
  it('allows a burst, then the steady rate, per key', () => {
    let now = 0;
    const limiter = new RateLimiter(2, 3, () => now);
    assert.deepEqual(
      [1, 2, 3, 4].map(() => limiter.take('a')),
      [true, true, true, false],
    );
    assert.equal(limiter.take('b'), true, 'another key has its own bucket');
    assert.equal(limiter.retryAfter('a'), 1);
    now += 500; // one token back at 2 per second
    assert.deepEqual([limiter.take('a'), limiter.take('a')], [true, false]);
    now += 10_000;
    assert.deepEqual(
      [1, 2, 3, 4].map(() => limiter.take('a')),
      [true, true, true, false],
      'never more than the burst',
    );
  });

  it('keeps the same token for a container across restarts of the agent, in a key file only root reads', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'berth-meta-')), 'metadata.key');
    const first = new MetadataTokens(file).tokenFor('t1', 'app');
    assert.equal(new MetadataTokens(file).tokenFor('t1', 'app'), first);
    assert.notEqual(new MetadataTokens(file).tokenFor('t1', 'web'), first);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  describe('over HTTP', () => {
    let server: MetadataServer;
    let uri: string;
    let keyFile: string;
    let task: TaskSnapshot;
    before(async () => {
      const port = await freeLoopbackPort();
      keyFile = join(mkdtempSync(join(tmpdir(), 'berth-meta-')), 'metadata.key');
      const tokens = new MetadataTokens(keyFile);
      server = new MetadataServer(tokens, { address: `127.0.0.1:${port}`, agentId: 'agent-1', requestsPerSecond: 5, burst: 10 }, pino({ level: 'silent' }));
      task = {
        definition: { id: 't1', family: 'f', revision: 2, networkMode: 'host', containers: [{ name: 'app', image: 'busybox', labels: {}, cpuUnits: 128, memoryMib: 64 }], cpuUnits: 0, memoryMib: 0 },
        knownStatus: 'RUNNING',
        desiredStatus: 'RUNNING',
        reason: '',
        containers: [
          {
            name: 'app',
            knownStatus: 'RUNNING',
            desiredStatus: 'RUNNING',
            runtimeId: 'c1',
            runtimeName: 'berth-t1-app',
            reason: '',
            portBindings: [],
            healthStatus: 'NONE',
            healthOutput: '',
            restartCount: 0,
            gpuIds: [],
            essential: true,
          },
        ],
        lastSequence: 1,
        createdAt: new Date(),
      } as unknown as TaskSnapshot;
      await server.start({ listTasks: () => [task], findTask: (id: string) => (id === 't1' ? task : undefined), sample: () => Promise.reject(new Error('no stats here')) });
      uri = server.uriFor('t1', 'app', '127.0.0.1');
    });
    after(() => server.stop());

    it('answers 429 with Retry-After once a container asks faster than allowed', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) statuses.push((await fetch(`${uri}/task`)).status);
      assert.equal(statuses.filter((s) => s === 200).length >= 10, true, statuses.join(','));
      const limited = await fetch(uri);
      assert.equal(limited.status, 429);
      assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    });

    it('after a restart of the agent, knows the URIs its containers were given before', async () => {
      const port = await freeLoopbackPort();
      const restarted = new MetadataServer(new MetadataTokens(keyFile), { address: `127.0.0.1:${port}`, agentId: 'agent-1', requestsPerSecond: 5, burst: 10 }, pino({ level: 'silent' }));
      await restarted.start({ listTasks: () => [task], findTask: (id: string) => (id === 't1' ? task : undefined), sample: () => Promise.reject(new Error('no stats here')) });
      try {
        const response = await fetch(uri.replace(/:\d+\//, `:${port}/`));
        assert.equal(response.status, 200);
        assert.equal(((await response.json()) as { Name: string }).Name, 'app');
      } finally {
        await restarted.stop();
      }
    });

    it('answers 404 for unknown tokens and paths, 405 for anything but GET', async () => {
      const base = uri.replace(/\/v4\/.*$/, '');
      assert.equal((await fetch(`${base}/v4/${'a'.repeat(40)}`)).status, 404);
      assert.equal((await fetch(`${base}/metadata`)).status, 404);
      assert.equal((await fetch(`${base}/v4/${'b'.repeat(40)}`, { method: 'POST' })).status, 405);
    });
  });
});
