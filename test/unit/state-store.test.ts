import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { migrate, MIGRATIONS } from '../../src/engine/store/migrations.js';
import { StateStore } from '../../src/engine/store/state-store.js';
import type { TaskDefinition } from '../../src/engine/model/task-definition.js';
import type { TaskState } from '../../src/engine/store/records.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-store-'));
const removed = { type: 'removed' } as const;
const event = (sequence: number, time = new Date()) => ({ sequence, time, taskId: 't', change: removed });

describe('state store (SQLite file)', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps events, sequences and records across a reopen; the file is readable by its owner only', () => {
    const path = join(dir, 'reopen.db');
    const first = new StateStore(path, { count: 100, maxAgeMs: 3_600_000 });
    for (let s = 1; s <= 5; s++) first.events.append(event(s));
    first.saveReservation('t', { cpuUnits: 1, memoryMib: 2, tcpPorts: [50000], udpPorts: [], gpuIds: [] });
    first.saveImage({ reference: 'registry.test/app:1', pulledAt: 10, lastUsedAt: 20, pulledWithCredentials: true });
    const attachment = { network: 'n', containerId: 'c', ifName: 'eth0', taskId: 't', netns: '/run/netns/x', config: { name: 'n' }, args: { A: '1' }, capabilityArgs: { portMappings: [] } };
    first.saveCniAttachment(attachment);
    first.saveCniAttachment({ ...attachment, containerId: 'd', result: { ips: [{ address: '10.0.0.2/24' }] } });
    first.close();
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const second = new StateStore(path, { count: 100, maxAgeMs: 3_600_000 });
    assert.equal(second.events.latestSequence(), 5);
    assert.deepEqual(
      second.events.readFrom(4, 10).map((e) => e.sequence),
      [4, 5],
    );
    assert.deepEqual(second.loadReservations().get('t')?.tcpPorts, [50000]);
    assert.deepEqual(second.loadImages(), [{ reference: 'registry.test/app:1', pulledAt: 10, lastUsedAt: 20, pulledWithCredentials: true }]);
    assert.deepEqual(second.loadCniAttachments(), [
      { ...attachment, result: undefined, addFailure: undefined },
      { ...attachment, containerId: 'd', result: { ips: [{ address: '10.0.0.2/24' }] }, addFailure: undefined },
    ]);
    second.deleteCniAttachment(attachment);
    assert.deepEqual(
      second.loadCniAttachments().map((a) => a.containerId),
      ['d'],
    );
    second.close();
  });

  it('retains events by count and by age, and never hands out a pruned sequence again', () => {
    const path = join(dir, 'retention.db');
    let now = 1_000_000;
    const store = new StateStore(path, { count: 3, maxAgeMs: 60_000 });
    for (let s = 1; s <= 5; s++) store.events.append(event(s, new Date(now)));
    assert.equal(store.events.oldestSequence(), 3);
    store.close();
    // Every event is past its age when the store is opened an hour later.
    const realNow = Date.now;
    Date.now = () => now + 3_600_000;
    try {
      const later = new StateStore(path, { count: 3, maxAgeMs: 60_000 });
      assert.equal(later.events.latestSequence(), 5);
      assert.equal(later.events.oldestSequence(), 6, 'nothing retained');
      later.close();
      const again = new StateStore(path, { count: 3, maxAgeMs: 60_000 });
      assert.equal(again.events.latestSequence(), 5, 'the sequence survives even with no event left');
      again.events.append(event(6, new Date(now + 3_600_000)));
      assert.equal(again.events.oldestSequence(), 6);
      again.close();
    } finally {
      Date.now = realNow;
      now = 0;
    }
  });

  it('drops events past their age from the oldest on, leaving no gap when the clock went back', () => {
    const path = join(dir, 'age.db');
    const realNow = Date.now;
    let now = 10_000_000;
    Date.now = () => now;
    try {
      const store = new StateStore(path, { count: 1000, maxAgeMs: 60_000 });
      const times = [0, 1_000, 2_000, 90_000, 3_000, 100_000];
      times.forEach((offset, i) => store.events.append(event(i + 1, new Date(now + offset))));
      assert.equal(store.events.oldestSequence(), 1);
      // 65 s after the first: the first three are past their age; the fifth is too, but the
      // fourth, before it, is not.
      now += 65_000;
      store.events.append(event(7, new Date(now)));
      assert.equal(store.events.oldestSequence(), 4);
      assert.deepEqual(
        store.events.readFrom(0, 100).map((e) => e.sequence),
        [4, 5, 6, 7],
      );
      // Once the fourth is old enough, the fifth goes with it; the seventh, older than the cutoff
      // too, stays behind the sixth.
      now += 90_000;
      store.events.append(event(8, new Date(now)));
      assert.deepEqual(
        store.events.readFrom(0, 100).map((e) => e.sequence),
        [6, 7, 8],
      );
      store.close();
    } finally {
      Date.now = realNow;
    }
  });

  it('migrates a new file to the newest schema and refuses a file from a newer berth', () => {
    const path = join(dir, 'schema.db');
    const db = new BetterSqlite3(path);
    assert.deepEqual(migrate(db), { from: 0, to: MIGRATIONS.at(-1)!.version });
    assert.deepEqual(migrate(db), { from: MIGRATIONS.at(-1)!.version, to: MIGRATIONS.at(-1)!.version });
    db.pragma('user_version = 99');
    assert.throws(() => migrate(db), /schema version 99, newer than this berth understands/);
    db.close();
  });

  it('assumes credentials for images pulled before step 4, so their cached copies are checked', () => {
    const db = new BetterSqlite3(join(dir, 'step4.db'));
    migrate(
      db,
      MIGRATIONS.filter((m) => m.version < 4),
    );
    db.prepare('INSERT INTO images (reference, pulled_at, last_used_at) VALUES (?, ?, ?)').run('registry.test/pulled:1', 10, 20);
    db.prepare('INSERT INTO images (reference, pulled_at, last_used_at) VALUES (?, ?, ?)').run('registry.test/never:1', null, 20);
    migrate(db);
    const rows = db.prepare('SELECT reference, pulled_with_credentials AS p FROM images ORDER BY reference').all();
    assert.deepEqual(rows, [
      { reference: 'registry.test/never:1', p: 0 },
      { reference: 'registry.test/pulled:1', p: 1 },
    ]);
    db.close();
  });

  it("finds a new task's place from the index of admissions, not by reading every task, and keeps the order of tasks admitted before step 5", () => {
    const db = new BetterSqlite3(join(dir, 'step5.db'));
    migrate(
      db,
      MIGRATIONS.filter((m) => m.version < 5),
    );
    for (const [id, admitted] of [
      ['second', 2],
      ['first', 1],
    ] as const) {
      db.prepare('INSERT INTO tasks (id, admitted, definition, state) VALUES (?, ?, ?, ?)').run(id, admitted, JSON.stringify({ id, containers: [] }), '{}');
    }
    db.close();
    const store = new StateStore(join(dir, 'step5.db'), { count: 100, maxAgeMs: 3_600_000 });
    store.insertTask({ id: 'third', containers: [] } as unknown as TaskDefinition, {} as TaskState, []);
    assert.deepEqual(
      store.loadTasks().map((t) => t.definition.id),
      ['first', 'second', 'third'],
    );
    store.close();
    const reopened = new BetterSqlite3(join(dir, 'step5.db'));
    const plan = reopened.prepare('EXPLAIN QUERY PLAN SELECT COALESCE(MAX(admitted), 0) + 1 FROM tasks').all() as { detail: string }[];
    assert.match(plan.map((row) => row.detail).join('; '), /SEARCH tasks USING COVERING INDEX tasks_by_admission/);
    reopened.close();
  });

  it('writes a transaction all or nothing', () => {
    const store = new StateStore(':memory:', { count: 100, maxAgeMs: 3_600_000 });
    assert.throws(() =>
      store.transaction(() => {
        store.events.append(event(1));
        store.saveReservation('t', { cpuUnits: 1, memoryMib: 1, tcpPorts: [], udpPorts: [], gpuIds: [] });
        throw new Error('fails half-way');
      }),
    );
    assert.deepEqual(store.events.readFrom(1, 10), []);
    assert.equal(store.loadReservations().size, 0);
    assert.equal(store.events.latestSequence(), 0, 'the undone event is not counted');
    store.events.append(event(1));
    store.close();
  });
});
