import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { EngineEvent } from '../../src/engine/events/events.js';
import { LABELS } from '../../src/engine/tasks/labels.js';
import { containerInput, containerStatus, engineUnderTest, taskInput, taskStatus, type EngineUnderTest } from '../harness/engine-harness.js';
import { FakeRuntime } from '../harness/fake-runtime.js';
import { StateStore } from '../../src/engine/store/state-store.js';

const IMAGE = 'registry.test/app:1';

/** Every event in the store, in order. */
function allEvents(store: StateStore): EngineEvent[] {
  return store.events.readFrom(1, 100_000);
}

describe('recovery after an agent restart (fake runtime, state store in memory)', () => {
  const engines: EngineUnderTest[] = [];
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.stop();
  });

  async function first(options: Parameters<typeof engineUnderTest>[0] = {}): Promise<EngineUnderTest> {
    const runtime = new FakeRuntime();
    runtime.registry.add(IMAGE);
    const t = await engineUnderTest({ ...options, runtime });
    engines.push(t);
    return t;
  }

  /** Stops the engine as a crash would leave things (containers running), and starts a new one on the same store. */
  async function restart(t: EngineUnderTest, options: Parameters<typeof engineUnderTest>[0] = {}): Promise<EngineUnderTest> {
    await t.engine.stop();
    engines.splice(engines.indexOf(t), 1);
    const next = await engineUnderTest({ ...options, runtime: t.runtime, store: t.store });
    engines.push(next);
    await next.engine.recovery;
    return next;
  }

  it('takes over a running task without creating anything again; sequences continue', async () => {
    const t = await first();
    t.engine.runTask(taskInput('t', [containerInput('a'), containerInput('b')]));
    await t.waitFor('RUNNING', taskStatus('t', 'RUNNING'));
    const latest = t.events.latestSequence();
    const calls = t.runtime.calls.length;
    const next = await restart(t);
    const task = next.engine.getTask('t');
    assert.equal(task.knownStatus, 'RUNNING');
    assert.deepEqual(
      task.containers.map((c) => c.knownStatus),
      ['RUNNING', 'RUNNING'],
    );
    assert.deepEqual(t.runtime.calls.slice(calls), [], 'no runtime call changed anything');
    assert.equal(next.events.latestSequence(), latest);
    next.engine.stopTask('t', 'done');
    await next.waitFor('STOPPED', taskStatus('t', 'STOPPED'));
    const sequences = allEvents(next.store).map((e) => e.sequence);
    assert.deepEqual(
      sequences,
      sequences.map((_, i) => i + 1),
      'one gapless sequence across both runs',
    );
  });

  it('stops a restored task that the current security settings no longer allow', async () => {
    const t = await first({ security: { allowPrivileged: true } });
    t.engine.runTask(taskInput('p', [containerInput('app', { privileged: true })]));
    t.engine.runTask(taskInput('ok', [containerInput('app')]));
    await t.waitFor('p RUNNING', taskStatus('p', 'RUNNING'));
    await t.waitFor('ok RUNNING', taskStatus('ok', 'RUNNING'));
    const next = await restart(t);
    await next.waitFor('p STOPPED', taskStatus('p', 'STOPPED'));
    assert.match(next.engine.getTask('p').reason, /no longer allowed on this agent: .*privileged.*security\.allowPrivileged/);
    assert.equal(next.engine.getTask('ok').knownStatus, 'RUNNING');
  });

  it('applies an exit that happened while the agent was down: the essential container stops the task', async () => {
    const t = await first();
    t.engine.runTask(taskInput('t', [containerInput('app'), containerInput('side', { essential: false })]));
    await t.waitFor('RUNNING', taskStatus('t', 'RUNNING'));
    await t.engine.stop();
    t.runtime.exitSilently('app', 3);
    const next = await restart(t);
    const stopped = await next.waitFor('STOPPED', taskStatus('t', 'STOPPED'));
    assert.ok(stopped);
    const task = next.engine.getTask('t');
    assert.equal(task.containers.find((c) => c.name === 'app')?.exitCode, 3);
    assert.match(task.reason, /essential container "app" exited with code 3/);
    assert.ok(t.runtime.calls.includes('stop side'));
  });

  it('marks a container that vanished while the agent was down STOPPED with a reason', async () => {
    const t = await first();
    t.engine.runTask(taskInput('t', [containerInput('app')]));
    await t.waitFor('RUNNING', taskStatus('t', 'RUNNING'));
    await t.engine.stop();
    const id = t.engine.getTask('t').containers[0]!.runtimeId!;
    t.runtime.containers.delete(id);
    const next = await restart(t);
    await next.waitFor('STOPPED', taskStatus('t', 'STOPPED'));
    assert.equal(next.engine.getTask('t').containers[0]?.reason, 'the container vanished from the runtime');
  });

  it('adopts by its name a container whose create answer was never recorded: no duplicate', async () => {
    const t = await first();
    t.runtime.lostCreateAnswers.add('app');
    t.engine.runTask(taskInput('t', [containerInput('app')]));
    await t.waitFor('PULLED', containerStatus('t', 'app', 'PULLED'));
    // The create is in flight for good; the agent "crashes" here.
    for (let i = 0; i < 50 && t.runtime.containers.size === 0; i++) await new Promise((r) => setImmediate(r));
    assert.equal(t.runtime.containers.size, 1);
    t.runtime.lostCreateAnswers.clear();
    const next = await restart(t);
    await next.waitFor('RUNNING', taskStatus('t', 'RUNNING'));
    assert.equal(t.runtime.containers.size, 1, 'still one container');
    const [only] = t.runtime.containers.values();
    assert.equal(next.engine.getTask('t').containers[0]?.runtimeId, only!.id);
  });

  it('holds the same host resources after a restart, so no new task takes its ports', async () => {
    const t = await first({ capacity: { dynamicPortRange: { first: 50000, last: 50000 } } });
    const withPort = (id: string) => taskInput(id, [containerInput('web', { portMappings: [{ containerPort: 80, hostPort: 0, protocol: 'TCP' }] })]);
    t.engine.runTask({ ...withPort('t1'), networkMode: 'BRIDGE' });
    await t.waitFor('RUNNING', taskStatus('t1', 'RUNNING'));
    const next = await restart(t, { capacity: { dynamicPortRange: { first: 50000, last: 50000 } } });
    assert.deepEqual(next.engine.getTask('t1').resources?.tcpPorts, [50000]);
    next.engine.runTask({ ...withPort('t2'), networkMode: 'BRIDGE' });
    await next.waitFor('t2 waits', (e) => e.taskId === 't2' && e.change.type === 'task' && /waiting for host resources/.test(e.change.reason));
    next.engine.stopTask('t1', 'make room');
    await next.waitFor('t2 RUNNING', taskStatus('t2', 'RUNNING'));
    assert.deepEqual(next.engine.getTask('t2').resources?.tcpPorts, [50000]);
  });

  it('removes a container with its labels that no task owns, after the grace period, with an event', async () => {
    const t = await first();
    const orphan = t.runtime.addContainer('berth-unit-gone-app', { [LABELS.agentId]: 'unit', [LABELS.taskId]: 'gone', [LABELS.containerName]: 'app' });
    const foreign = t.runtime.addContainer('someone-else', { [LABELS.agentId]: 'another-agent', [LABELS.taskId]: 'gone' });
    const next = await restart(t, { orphanGracePeriodMs: 50 });
    const event = await next.waitFor('orphan removed', (e) => e.change.type === 'orphan-removed');
    assert.deepEqual(event.change, { type: 'orphan-removed', runtimeId: orphan, runtimeName: 'berth-unit-gone-app', containerName: 'app' });
    assert.equal(event.taskId, 'gone');
    assert.ok(!t.runtime.containers.has(orphan));
    assert.ok(t.runtime.containers.has(foreign), "another agent's container is left alone");
  });

  it('resumes a task stopped by request before the restart: no container is started again', async () => {
    const t = await first();
    t.engine.runTask(taskInput('t', [containerInput('app')]));
    await t.waitFor('RUNNING', taskStatus('t', 'RUNNING'));
    t.engine.stopTask('t', 'by request');
    await t.waitFor('STOPPED', taskStatus('t', 'STOPPED'));
    const starts = t.runtime.calls.filter((c) => c.startsWith('start')).length;
    const next = await restart(t, { taskCleanupWaitMs: 20 });
    await next.waitFor('removed', (e) => e.taskId === 't' && e.change.type === 'removed');
    assert.equal(t.runtime.calls.filter((c) => c.startsWith('start')).length, starts);
    assert.equal(t.runtime.containers.size, 0, 'cleaned up after the rest of its wait');
    assert.deepEqual(next.store.loadTasks(), []);
  });
});
