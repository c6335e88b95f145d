import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { StateStore } from '../../src/engine/store/state-store.js';
import { waitUntil } from '../harness/processes.js';
import { COMMITS_PER_CHECKPOINT, WalCheckpointer } from '../../src/engine/store/wal-checkpointer.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-checkpoint-'));
const removed = { type: 'removed' } as const;

/** A database in WAL mode that checkpoints only when told (as the state store sets it), and an insert of a row of `bytes`. */
function logged(name: string, bytes: number) {
  const path = join(dir, name);
  const db = new BetterSqlite3(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE rows (id INTEGER PRIMARY KEY, data BLOB)');
  return { path, db, insert: db.prepare(`INSERT INTO rows (data) VALUES (zeroblob(${bytes}))`) };
}

describe('checkpoints of the state store in a worker thread', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('copies the log into the database off the event loop, and the log stops growing', async () => {
    const path = join(dir, 'state.db');
    const store = new StateStore(path, { count: 100_000, maxAgeMs: 3_600_000 });
    const checkpoints: number[] = [];
    store.on('checkpoint', (seconds) => checkpoints.push(seconds));
    const walSizes: number[] = [];
    let sequence = 0;
    try {
      for (let round = 0; round < 6; round++) {
        const checkpointed = once(store, 'checkpoint');
        for (let i = 0; i < COMMITS_PER_CHECKPOINT; i++) {
          sequence++;
          store.transaction(() => {
            store.events.append({ sequence, time: new Date(), taskId: `t${i}`, change: removed });
            store.saveReservation(`t${i % 50}`, { cpuUnits: round, memoryMib: i, tcpPorts: [], udpPorts: [], gpuIds: [] });
          });
        }
        await checkpointed;
        walSizes.push(statSync(`${path}-wal`).size);
      }
      assert.equal(checkpoints.length, 6, 'one checkpoint for each round of commits');
      // Once copied, the log is written from its start again: its file keeps its size from one round
      // to the next (it would grow by a round each time otherwise).
      const kept = walSizes.filter((size, i) => i > 0 && size === walSizes[i - 1]).length;
      assert.ok(kept >= 2, `the log was written from its start again (its file: ${walSizes.join(', ')} bytes)`);
      // What was checkpointed is in the database file itself: a reader of the file alone sees it.
      const other = new BetterSqlite3(path, { readonly: true });
      try {
        const { count } = other.prepare('SELECT COUNT(*) AS count FROM events').get() as { count: number };
        assert.equal(count, sequence);
      } finally {
        other.close();
      }
    } finally {
      store.close();
    }
    const reopened = new StateStore(path, { count: 100_000, maxAgeMs: 3_600_000 });
    assert.equal(reopened.events.latestSequence(), sequence);
    reopened.close();
  });

  it('under writes that never pause, the log is finished on the writing connection past its limit, and stays bounded', async () => {
    const { path, db, insert } = logged('sustained.db', 3000);
    let finished = 0;
    const frames: number[] = [];
    const checkpointer = new WalCheckpointer(
      path,
      {
        checkpointed: (_seconds, length) => frames.push(length),
        finishCheckpoint: () => {
          finished++;
          db.pragma('wal_checkpoint(PASSIVE)');
        },
        workerLost: (reason) => assert.fail(reason),
      },
      { commitsPerCheckpoint: 50, restartAfterFrames: 400 },
    );
    try {
      // The worker started and checkpointed once first: its start (tens of milliseconds) is not measured.
      for (let i = 0; i < 50; i++) {
        insert.run();
        checkpointer.committed();
      }
      await waitUntil('the first checkpoint', 10_000, async () => (frames.length > 0 ? true : undefined));
      frames.length = 0;
      // Commits never stop for a checkpoint to catch up: one every turn of the event loop.
      for (let i = 0; i < 3000; i++) {
        insert.run();
        checkpointer.committed();
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      checkpointer.close();
    }
    assert.ok(frames.length >= 10, `the worker checkpointed (${frames.length} times)`);
    assert.ok(finished >= 2, `the writing connection finished checkpoints (${finished} times)`);
    // The log was written from its start again after each: it was shorter at the next checkpoint.
    const restarts = frames.filter((length, i) => i > 0 && length < frames[i - 1]!).length;
    assert.ok(restarts >= 2, `the log restarted (${restarts} times; its lengths ${frames.join(', ')})`);
    const written = frames.reduce((most, length) => Math.max(most, length), 0);
    assert.ok(written < 3000, `the log never held all 3,000 commits (at most ${written} pages)`);
    const { count } = db.prepare('SELECT COUNT(*) AS count FROM rows').get() as { count: number };
    assert.equal(count, 3050);
    db.close();
  });

  it('closes an idle worker, and starts another for the next checkpoint', async () => {
    const { path, db, insert } = logged('idle.db', 100);
    let checkpoints = 0;
    const checkpointer = new WalCheckpointer(
      path,
      { checkpointed: () => checkpoints++, finishCheckpoint: () => undefined, workerLost: (reason) => assert.fail(reason) },
      { commitsPerCheckpoint: 10, restartAfterFrames: 100_000, workerIdleMs: 100 },
    );
    try {
      for (let round = 1; round <= 2; round++) {
        for (let i = 0; i < 10; i++) {
          insert.run();
          checkpointer.committed();
        }
        assert.equal(checkpointer.hasWorker, true, `round ${round}: a worker for the checkpoint`);
        await waitUntil(`round ${round}: the checkpoint`, 10_000, async () => (checkpoints === round ? true : undefined));
        await waitUntil(`round ${round}: the idle worker closed`, 10_000, async () => (checkpointer.hasWorker ? undefined : true));
      }
    } finally {
      checkpointer.close();
      db.close();
    }
  });

  it('a worker that cannot open the file is reported lost, once, and takes no more work', async () => {
    const lost: string[] = [];
    const checkpointer = new WalCheckpointer(join(dir, 'missing', 'state.db'), { workerLost: (reason) => lost.push(reason), finishCheckpoint: () => assert.fail('no checkpoint ran') });
    for (let i = 0; i < COMMITS_PER_CHECKPOINT; i++) checkpointer.committed();
    const deadline = Date.now() + 10_000;
    while (lost.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(lost.length, 1);
    assert.match(lost[0]!, /checkpoint worker/);
    for (let i = 0; i < COMMITS_PER_CHECKPOINT; i++) checkpointer.committed();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(lost.length, 1);
    checkpointer.close();
  });
});
