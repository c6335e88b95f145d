import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { FleetCache } from '../../src/cluster/fleet-cache.js';
import { scriptedEtcd } from '../harness/scripted-etcd.js';

describe('FleetCache (the controller’s view of etcd)', () => {
  it('keeps what this process wrote when older watch events of the same keys arrive after it', async () => {
    const { etcd, watching, send } = scriptedEtcd();
    const cache = new FleetCache(etcd, '/p/', () => undefined, pino({ level: 'silent' }));
    const stop = new AbortController();
    const running = cache.run(stop.signal);
    await watching;
    // Two writes of one key (revisions 5 and 7) and a deletion of another (8), recorded at once...
    cache.wrote('/p/ledger/a', Buffer.from('second'), 7);
    cache.wrote('/p/placements/t', undefined, 8);
    // ...and the watch bringing the older changes afterwards.
    send(6, [
      { type: 'Put', key: '/p/ledger/a', value: 'first', modRevision: 5 },
      { type: 'Put', key: '/p/placements/t', value: 'assigned', modRevision: 6 },
    ]);
    assert.equal(cache.entries.get('/p/ledger/a')?.value.toString(), 'second');
    assert.equal(cache.entries.get('/p/ledger/a')?.modRevision, 7);
    assert.equal(cache.entries.has('/p/placements/t'), false, 'a key deleted here stays deleted');
    // The watch reaches those writes, and goes on with later changes as they come.
    send(8, [
      { type: 'Put', key: '/p/ledger/a', value: 'second', modRevision: 7 },
      { type: 'Delete', key: '/p/placements/t', modRevision: 8 },
    ]);
    send(9, [{ type: 'Put', key: '/p/placements/t', value: 'again', modRevision: 9 }]);
    assert.equal(cache.entries.get('/p/placements/t')?.value.toString(), 'again');
    send(10, [{ type: 'Put', key: '/p/ledger/a', value: 'third', modRevision: 10 }]);
    assert.equal(cache.entries.get('/p/ledger/a')?.value.toString(), 'third');
    assert.equal(cache.revision, 10);
    stop.abort();
    await running;
  });
});
