import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import type { TaskDefinitionInput } from '../../src/engine/admission/task-validation.js';
import { UnavailableError } from '../../src/engine/errors.js';
import type { TaskSnapshot } from '../../src/engine/model/task-snapshot.js';
import { TaskStatus } from '../../src/gen/berth/agent/v1/task.js';
import { ContainerDefinition, TaskDefinition } from '../../src/gen/berth/agent/v1/task_definition.js';
import { Assignment } from '../../src/gen/berth/cluster/v1/node.js';
import { AssignmentApplier, RetryLaterError, type AssignableEngine } from '../../src/cluster/agent/assignment-applier.js';
import { AssignmentSync } from '../../src/cluster/agent/assignment-sync.js';
import { MemberStore } from '../../src/cluster/agent/member-store.js';
import { ClusterKeys } from '../../src/cluster/keys.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { Membership } from '../../src/cluster/membership.js';
import pino from 'pino';
import { scriptedEtcd } from '../harness/scripted-etcd.js';

/** A stand-in for the engine's RunTask/StopTask: tasks by id, and what was asked of it. */
class FakeEngine implements AssignableEngine {
  readonly tasks = new Map<string, TaskSnapshot>();
  readonly runs: string[] = [];
  readonly stops: [string, string][] = [];
  unavailable = false;

  runTask(input: TaskDefinitionInput) {
    if (this.unavailable) throw new UnavailableError('the runtime is down');
    this.runs.push(input.id);
    const existing = this.tasks.get(input.id);
    if (existing) return { task: existing, created: false };
    const task = { definition: { id: input.id }, knownStatus: 'RUNNING', desiredStatus: 'RUNNING', reason: '', containers: [], lastSequence: 1, createdAt: new Date() } as unknown as TaskSnapshot;
    this.tasks.set(input.id, task);
    return { task, created: true };
  }

  stopTask(id: string, reason: string) {
    this.stops.push([id, reason]);
    const task = this.tasks.get(id)!;
    task.desiredStatus = 'STOPPED';
    return task;
  }

  findTask(id: string) {
    return this.tasks.get(id);
  }
}

const definition = (id: string) => TaskDefinition.fromPartial({ id, family: 'f', containers: [ContainerDefinition.fromPartial({ name: 'app', image: 'busybox' })] });
const encode = (assignment: Partial<Assignment>) => Assignment.encode(Assignment.fromPartial(assignment)).finish();

function setUp() {
  const engine = new FakeEngine();
  const store = new MemberStore(':memory:');
  const changed: string[] = [];
  return { engine, store, changed, applier: new AssignmentApplier(engine, store, (id) => changed.push(id)) };
}

describe('AssignmentApplier (assignments to engine calls)', () => {
  it('runs a new assignment once, records it as owned before it runs, and is idempotent on a repeat', () => {
    const { engine, store, changed, applier } = setUp();
    applier.apply('t1', encode({ task: definition('t1'), clusterTaskId: 'c1' }), 5);
    applier.apply('t1', encode({ task: definition('t1'), clusterTaskId: 'c1' }), 6);
    assert.deepEqual(engine.runs, ['t1', 't1'], 'RunTask semantics: the second call finds the task');
    assert.equal(engine.tasks.size, 1);
    assert.deepEqual(store.get('t1'), { taskId: 't1', clusterTaskId: 'c1', revision: 6, refusal: undefined, owned: true, released: false, finished: false, admitted: true });
    assert.deepEqual(changed, ['t1', 't1']);
  });

  it('never takes over or stops a task sent directly under the same id', () => {
    const { engine, store, applier } = setUp();
    engine.runTask({ id: 'direct' } as TaskDefinitionInput);
    applier.apply('direct', encode({ task: definition('direct') }), 3);
    assert.match(store.get('direct')!.refusal!, /sent to the agent directly/);
    assert.equal(store.get('direct')!.owned, false);
    applier.apply('direct', undefined, 4);
    applier.releaseAllBut(new Set());
    assert.deepEqual(engine.stops, []);
    assert.equal(store.get('direct'), undefined, 'the refusal is forgotten with its assignment');
  });

  it('stops an owned task when its assignment goes, and forgets it once the engine does', () => {
    const { engine, store, applier } = setUp();
    applier.apply('t1', encode({ task: definition('t1') }), 1);
    applier.apply('t1', undefined, 2);
    assert.deepEqual(engine.stops, [['t1', 'its assignment was deleted']]);
    assert.equal(store.get('t1')!.released, true);
    applier.forgotten('t1');
    assert.equal(store.get('t1'), undefined);
  });

  it('does not run a task again that ran and was forgotten while its assignment stays', () => {
    const { engine, store, applier } = setUp();
    applier.apply('t1', encode({ task: definition('t1') }), 1);
    engine.tasks.delete('t1');
    applier.forgotten('t1');
    applier.apply('t1', encode({ task: definition('t1') }), 1);
    assert.deepEqual(engine.runs, ['t1']);
    assert.equal(store.get('t1')!.finished, true);
  });

  it('after a full list, releases the assigned tasks that are no longer listed', () => {
    const { engine, applier } = setUp();
    for (const id of ['a', 'b', 'c']) applier.apply(id, encode({ task: definition(id) }), 1);
    applier.releaseAllBut(new Set(['b']));
    assert.deepEqual(engine.stops.map(([id]) => id).sort(), ['a', 'c']);
  });

  it('STOPPED: stops a running task with the given reason; one not yet run is never started', () => {
    const { engine, store, applier } = setUp();
    applier.apply('t1', encode({ task: definition('t1') }), 1);
    applier.apply('t1', encode({ task: definition('t1'), desiredStatus: TaskStatus.TASK_STATUS_STOPPED, stopReason: 'scaled in' }), 2);
    assert.deepEqual(engine.stops, [['t1', 'scaled in']]);
    applier.apply('t2', encode({ task: definition('t2'), desiredStatus: TaskStatus.TASK_STATUS_STOPPED }), 3);
    assert.equal(engine.tasks.has('t2'), false);
    assert.match(store.get('t2')!.refusal!, /^not started/);
  });

  it('refuses with a reason: undecodable values, a key that does not match, passwords, bad statuses, invalid definitions', () => {
    const { engine, store, applier } = setUp();
    applier.apply('x', Buffer.from([0xff, 0xff, 0xff]), 1);
    assert.match(store.get('x')!.refusal!, /not a berth\.cluster\.v1\.Assignment/);
    applier.apply('y', encode({ task: definition('z') }), 1);
    assert.match(store.get('y')!.refusal!, /not the one in its key/);
    const withPassword = definition('p');
    withPassword.containers[0]!.registryCredentials = { username: 'u', password: 'secret' };
    applier.apply('p', encode({ task: withPassword }), 1);
    assert.match(store.get('p')!.refusal!, /registry_credentials/);
    assert.doesNotMatch(store.get('p')!.refusal!, /secret/);
    applier.apply('s', encode({ task: definition('s'), desiredStatus: TaskStatus.TASK_STATUS_PULLED }), 1);
    assert.match(store.get('s')!.refusal!, /RUNNING or STOPPED/);
    assert.deepEqual(engine.runs, []);
  });

  it('asks to be tried again when the engine cannot take work yet, and records no refusal', () => {
    const { engine, store, applier } = setUp();
    engine.unavailable = true;
    assert.throws(() => applier.apply('t1', encode({ task: definition('t1') }), 1), RetryLaterError);
    // Nothing recorded: no report may say it stopped, no catch-up may take it for done.
    assert.equal(store.get('t1'), undefined);
    engine.unavailable = false;
    applier.apply('t1', encode({ task: definition('t1') }), 1);
    assert.equal(engine.tasks.has('t1'), true);
  });

  it('applies nothing past an assignment that could not be applied, until the assignments are listed again', async () => {
    const { etcd, watching, send } = scriptedEtcd();
    const { engine, store, applier } = setUp();
    const keys = new ClusterKeys('/berth/');
    const sync = new AssignmentSync(etcd, keys, 'n1', applier, store, new Membership('/berth/', 'unix:///x'), pino({ level: 'silent' }));
    const stop = new AbortController();
    const running = sync.run(stop.signal);
    await watching;
    assert.equal(store.appliedRevision, 1, 'listed at revision 1');
    engine.unavailable = true;
    send(5, [{ type: 'Put', key: keys.assignment('n1', 't1'), value: encode({ task: definition('t1') }), modRevision: 5 }]);
    // The engine is back as the watch brings the next change, before the watch is cancelled.
    engine.unavailable = false;
    send(6, [{ type: 'Put', key: keys.assignment('n1', 't2'), value: encode({ task: definition('t2') }), modRevision: 6 }]);
    assert.equal(store.appliedRevision, 1, 'a restart now would still see t1');
    assert.deepEqual([...engine.tasks.keys()], []);
    stop.abort();
    await running;
  });

  it('the member store keeps assignments and the applied revision across reopening', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'berth-member-')), 'cluster.db');
    const store = new MemberStore(path);
    store.appliedRevision = 42;
    store.save({ taskId: 't1', clusterTaskId: 'c1', revision: 7, refusal: undefined, owned: true, released: false, finished: false, admitted: true });
    store.close();
    const reopened = new MemberStore(path);
    assert.equal(reopened.appliedRevision, 42);
    assert.deepEqual(reopened.get('t1'), { taskId: 't1', clusterTaskId: 'c1', revision: 7, refusal: undefined, owned: true, released: false, finished: false, admitted: true });
    reopened.close();
  });

  it('opens a member file written before records said whether the engine took their task: each counts as taken', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'berth-member-')), 'cluster.db');
    const old = new BetterSqlite3(path);
    old.exec(`CREATE TABLE assigned (task_id TEXT PRIMARY KEY, cluster_task_id TEXT NOT NULL, revision INTEGER NOT NULL, refusal TEXT,
      owned INTEGER NOT NULL DEFAULT 0, released INTEGER NOT NULL DEFAULT 0, finished INTEGER NOT NULL DEFAULT 0)`);
    old.prepare('INSERT INTO assigned VALUES (?, ?, ?, NULL, 1, 0, 0)').run('t1', 'c1', 3);
    old.close();
    const store = new MemberStore(path);
    assert.equal(store.get('t1')!.admitted, true);
    store.save({ ...store.get('t1')!, admitted: false });
    store.close();
    const reopened = new MemberStore(path);
    assert.equal(reopened.get('t1')!.admitted, false);
    reopened.close();
  });
});

describe('cluster keys, membership and config', () => {
  it('lays keys out under the prefix and parses only direct children', () => {
    const keys = new ClusterKeys('/berth/');
    assert.equal(keys.assignment('n1', 't1'), '/berth/assignments/n1/t1');
    assert.equal(ClusterKeys.leaf(keys.assignmentsOf('n1'), '/berth/assignments/n1/t1'), 't1');
    assert.equal(ClusterKeys.leaf(keys.assignmentsOf('n1'), '/berth/assignments/n1/t1/x'), undefined);
    assert.equal(ClusterKeys.leaf(keys.assignmentsOf('n1'), '/berth/assignments/n10/t1'), undefined);
  });

  it('membership is connected only while every part works, and says why not', () => {
    const membership = new Membership('/berth/', 'unix:///run/berth/berth.sock', 0);
    assert.equal(membership.view().connected, false);
    membership.ok('registration');
    assert.equal(membership.view().connected, true);
    membership.failed('assignments', 'watch disconnected');
    assert.deepEqual([membership.view().connected, membership.view().reason], [false, 'assignments: watch disconnected']);
  });

  it('membership rides out a failover: a part that works again within the grace is not counted', () => {
    let now = 1_000_000;
    const membership = new Membership('/berth/', 'unix:///run/berth/berth.sock', 5000, () => now);
    now += 100;
    membership.ok('registration');
    const view = () => membership.view();
    assert.deepEqual([view().connected, view().since.getTime()], [true, 1_000_100]);
    // The keep-alive's member stops; the client reaches another within the grace.
    now += 1000;
    membership.failed('registration', 'lease keep-alive failed: unavailable');
    now += 1500;
    membership.failed('registration', 'lease keep-alive failed: unavailable');
    assert.equal(view().connected, true);
    membership.ok('registration');
    now += 10_000;
    assert.deepEqual([view().connected, view().reason, view().since.getTime()], [true, '', 1_000_100]);
    // A part that keeps failing past the grace counts, from when it started failing.
    const failedAt = now;
    membership.failed('assignments', 'watch disconnected: unavailable');
    now += 4999;
    membership.failed('assignments', 'watch disconnected: still unavailable');
    assert.equal(view().connected, true);
    now += 1;
    assert.deepEqual([view().connected, view().reason, view().since.getTime()], [false, 'assignments: watch disconnected: still unavailable', failedAt]);
    assert.equal(membership.connected, false);
    now += 20_000;
    membership.ok('assignments');
    assert.deepEqual([view().connected, view().since.getTime()], [true, now]);
  });

  it('reads the cluster section with defaults, and names the key of each mistake', () => {
    const base = { agentId: 'n1', grpc: { tcpAddress: '10.0.0.5:7443', tls: { certFile: '/c', keyFile: '/k' } } };
    const load = (cluster: unknown) => {
      const file = `/tmp/berth-cluster-config-${process.pid}.json`;
      writeFileSync(file, JSON.stringify({ ...base, cluster }));
      return loadConfig(file, {});
    };
    assert.equal(loadConfig(undefined, {}).cluster, undefined);
    const config = load({ endpoints: ['127.0.0.1:2379'] }).cluster!;
    assert.deepEqual(config, { endpoints: ['127.0.0.1:2379'], tls: undefined, prefix: '/berth/', leaseTtlMs: 10_000, attributes: {}, advertiseAddress: '10.0.0.5:7443' });
    const refused = (cluster: unknown, key: string) =>
      assert.throws(
        () => load(cluster),
        (e: unknown) => e instanceof ConfigError && e.key === key,
      );
    refused({}, 'cluster.endpoints');
    refused({ endpoints: ['not a url'] }, 'cluster.endpoints');
    refused({ endpoints: ['127.0.0.1:2379'], prefix: 'berth' }, 'cluster.prefix');
    refused({ endpoints: ['127.0.0.1:2379'], leaseTtl: '1s' }, 'cluster.leaseTtl');
    refused({ endpoints: ['127.0.0.1:2379'], leaseTtl: '2500ms' }, 'cluster.leaseTtl');
    refused({ endpoints: ['127.0.0.1:2379'], attributes: { os: 'plan9' } }, 'cluster.attributes.os');
    refused({ endpoints: ['127.0.0.1:2379'], tls: { certFile: '/c' } }, 'cluster.tls');
    refused({ endpoints: ['http://127.0.0.1:2379'], tls: { caFile: '/ca' } }, 'cluster.endpoints');
    refused({ endpoints: ['127.0.0.1:2379'], advertiseAddress: 'nowhere' }, 'cluster.advertiseAddress');
    refused({ endpoints: ['127.0.0.1:2379'], surprise: 1 }, 'cluster.surprise');
  });
});
