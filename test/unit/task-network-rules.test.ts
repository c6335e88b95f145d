import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { TaskDefinition } from '../../src/engine/model/task-definition.js';
import type { CniPortMapping, NetworkSetUp, TakenHolder, TaskNetworking, WarmHolders } from '../../src/engine/network/task-network.js';
import { containerInput, containerStatus, engineUnderTest, taskInput, taskStatus, type EngineUnderTest } from '../harness/engine-harness.js';
import { FakeRuntime } from '../harness/fake-runtime.js';

const IMAGE = 'registry.test/app:1';
const PAUSE_IMAGE = 'registry.test/pause:1';

const STUB_STATUS = { network: 'stub', ifName: 'eth0', ipAddresses: ['10.9.0.2/24'], gateways: ['10.9.0.1'] };
const WARM_STATUS = { network: 'stub', ifName: 'eth0', ipAddresses: ['10.9.0.7/24'], gateways: ['10.9.0.1'] };

/**
 * Stands in for CNI: records set-up and teardown in the fake runtime's call list, so the order of
 * network and container calls can be checked in one place.
 */
class StubNetworking {
  failWith: string | undefined;
  /** Set: teardown waits for it. */
  holdTearDown: Promise<void> | undefined;
  /** Set: ADD (after the namespace is made) waits for it. */
  holdAdd: Promise<void> | undefined;
  readonly portMappings: CniPortMapping[][] = [];
  private readonly held = new Set<string>();
  /** What the engine gave for making warm pause containers (on a runtime without namespaces by path). */
  holders: WarmHolders | undefined;
  /** Warm pause containers ready, their network set up. */
  readonly warm: TakenHolder[] = [];
  /** The tasks whose launch the engine said ended, in order. */
  readonly launchesEnded: string[] = [];
  launchEnded = (taskId: string) => {
    this.launchesEnded.push(taskId);
  };
  constructor(private readonly runtime: FakeRuntime) {}
  useWarmHolders = (holders: WarmHolders) => (this.holders = holders);
  isWarmHolder = (name: string) => this.warm.some((w) => w.runtimeName === name);
  /** Warm pause containers the engine found not running. */
  readonly dropped: string[] = [];
  dropDeadWarmHolder(name: string): void {
    this.dropped.push(name);
    this.warm.splice(
      this.warm.findIndex((w) => w.runtimeName === name),
      1,
    );
  }
  takeWarmHolder(taskId: string): TakenHolder | undefined {
    const taken = this.warm.shift();
    if (taken) this.held.add(taskId);
    return taken;
  }
  /** Makes a warm pause container through the engine's holders, as the pool would. */
  async makeWarm(name: string): Promise<string> {
    const { runtimeId } = await this.holders!.create(name);
    this.warm.push({ runtimeId, runtimeName: name, status: WARM_STATUS });
    return runtimeId;
  }
  namespaceName = (taskId: string) => `berth-unit-${taskId}`;
  namespacePath = (taskId: string) => `/run/netns/berth-unit-${taskId}`;
  restoredState = (taskId: string) => (this.held.has(taskId) ? { kind: 'ready' as const, status: STUB_STATUS } : { kind: 'none' as const });
  hasAttachment = (taskId: string) => this.held.has(taskId);
  releaseStrays = async () => undefined;
  startWarmPool = () => undefined;
  stop = async () => undefined;
  check = async () => undefined;
  async setUp(task: TaskDefinition, holderPid: number | undefined, portMappings: CniPortMapping[], namespaceMade?: () => void): Promise<NetworkSetUp> {
    namespaceMade?.();
    await this.holdAdd;
    this.runtime.calls.push(holderPid === undefined ? 'network add (namespace made)' : `network add (pid ${holderPid > 0 ? 'known' : 'missing'})`);
    this.held.add(task.id);
    this.portMappings.push(portMappings);
    if (this.failWith) return { ok: false, reason: `cannot set up the task's network: ${this.failWith}` };
    return { ok: true, status: STUB_STATUS };
  }
  async tearDown(taskId: string): Promise<void> {
    await this.holdTearDown;
    this.runtime.calls.push('network del');
    this.held.delete(taskId);
  }
}

/** Lets the engine run, a loop turn at a time, until the fake runtime was asked `call` (at most 1000 turns). */
async function untilCalled(runtime: FakeRuntime, call: string): Promise<void> {
  for (let turn = 0; turn < 1000 && !runtime.calls.includes(call); turn++) await new Promise((resolve) => setImmediate(resolve));
  assert.ok(runtime.calls.includes(call), `${call}: ${runtime.calls.join(', ')}`);
}

describe('engine rules for CNI-networked tasks (fake runtime, stub CNI)', () => {
  let t: EngineUnderTest;
  let stub: StubNetworking;
  afterEach(async () => {
    await t?.stop();
  });

  /** `earlier`: the runtime, store and network of an engine stopped as a crash would leave them. */
  async function setup(options: { joinsNetworkNamespaces?: boolean; earlier?: EngineUnderTest; orphanGracePeriodMs?: number } = {}) {
    const runtime = options.earlier?.runtime ?? new FakeRuntime();
    runtime.joinsNetworkNamespaces = options.joinsNetworkNamespaces ?? false;
    stub = options.earlier ? stub : new StubNetworking(runtime);
    t = await engineUnderTest({ runtime, store: options.earlier?.store, networking: stub as unknown as TaskNetworking, orphanGracePeriodMs: options.orphanGracePeriodMs });
    t.runtime.registry.add(IMAGE);
    t.runtime.registry.add(PAUSE_IMAGE);
  }

  it('starts the pause container and sets the network up before starting the others, which join its namespace', async () => {
    await setup();
    t.engine.runTask({
      ...taskInput('t', [containerInput('web', { portMappings: [{ containerPort: 80, hostPort: 8080 }] }), containerInput('side')]),
      networkMode: 'TASK',
    });
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    const calls = t.runtime.calls.filter((c) => !c.startsWith('pull'));
    // Created while the network is set up, started after it.
    assert.equal(calls[0], 'create berth.pause');
    const after = (call: string, earlier: string) => assert.ok(calls.indexOf(earlier) < calls.indexOf(call), `${earlier} before ${call}: ${calls.join(', ')}`);
    after('start berth.pause', 'create berth.pause');
    after('network add (pid known)', 'start berth.pause');
    after('create web', 'create berth.pause');
    after('start web', 'network add (pid known)');
    after('start side', 'network add (pid known)');
    const web = [...t.runtime.containers.values()].find((c) => c.labels['berth.container-name'] === 'web')!;
    const pause = [...t.runtime.containers.values()].find((c) => c.labels['berth.container-name'] === 'berth.pause')!;
    assert.equal(pause.spec.network, 'none');
    assert.equal(web.spec.network, 'container');
    assert.deepEqual(web.spec.networkContainer, { id: pause.id, netnsPath: '/run/netns/berth-unit-t' });
    assert.deepEqual(web.spec.ports, [], "port mappings are the network's, not the runtime's");
    assert.deepEqual(stub.portMappings, [[{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]]);
    const snapshot = t.engine.getTask('t');
    assert.deepEqual(
      snapshot.containers.map((c) => c.name),
      ['web', 'side'],
    );
    assert.deepEqual(snapshot.network?.ipAddresses, ['10.9.0.2/24']);
    // No event names the pause container.
    const events = t.store.events.readFrom(1, 1000);
    assert.ok(events.every((e) => e.change.type !== 'container' || e.change.container.name !== 'berth.pause'));
    assert.ok(events.some((e) => e.change.type === 'network' && e.change.network?.ipAddresses[0] === '10.9.0.2/24'));
  });

  it('on stop: the others stop, then DEL, then the pause container stops and is removed; only then is the task STOPPED', async () => {
    await setup();
    t.engine.runTask({ ...taskInput('t', [containerInput('app')]), networkMode: 'TASK' });
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    t.runtime.calls.length = 0;
    t.engine.stopTask('t', 'test');
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    assert.deepEqual(t.runtime.calls, ['stop app', 'network del', 'stop berth.pause', 'remove berth.pause']);
    assert.equal(t.engine.getTask('t').network, undefined);
  });

  it('when the pause container dies, the task stops and says why; the network is deleted', async () => {
    await setup();
    t.engine.runTask({ ...taskInput('t', [containerInput('app')]), networkMode: 'TASK' });
    await t.waitFor('app RUNNING', containerStatus('t', 'app', 'RUNNING'));
    t.runtime.exit('berth.pause', 137);
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    assert.match(t.engine.getTask('t').reason, /^the pause container holding the task's network namespace exited with code 137/);
    assert.ok(t.runtime.calls.includes('network del'));
    assert.equal(stub.hasAttachment('t'), false);
  });

  it('a failed set-up stops the task with its reason before any other container starts', async () => {
    await setup();
    stub.failWith = 'CNI ADD failed in plugin "bridge": no luck';
    t.engine.runTask({ ...taskInput('t', [containerInput('app')]), networkMode: 'TASK' });
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    const statuses = t.store.events
      .readFrom(1, 1000)
      .flatMap((e) => (e.change.type === 'task' ? [e.change.knownStatus] : []))
      .filter((status, i, all) => status !== all[i - 1]);
    assert.deepEqual(statuses, ['NONE', 'PULLED', 'CREATED', 'STOPPED'], 'never RUNNING: only its pause container ran');
    assert.deepEqual(stub.launchesEnded, ['t'], 'a launch that failed ends too');
    const snapshot = t.engine.getTask('t');
    assert.equal(snapshot.reason, 'cannot set up the task\'s network: CNI ADD failed in plugin "bridge": no luck');
    assert.ok(!t.runtime.calls.includes('start app'));
    assert.deepEqual(t.runtime.calls.filter((c) => !c.startsWith('pull')).slice(-3), ['network del', 'stop berth.pause', 'remove berth.pause']);
  });

  describe('on a runtime whose containers join a namespace by its path', () => {
    it('makes the namespace and sets the network up while the containers are created; they join it by its path and start after', async () => {
      await setup({ joinsNetworkNamespaces: true });
      t.engine.runTask({
        ...taskInput('t', [containerInput('web', { portMappings: [{ containerPort: 80, hostPort: 8080 }] }), containerInput('side')]),
        networkMode: 'TASK',
      });
      await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
      assert.ok(!t.runtime.calls.some((c) => c.includes('berth.pause')), `no pause container: ${t.runtime.calls.join(', ')}`);
      assert.ok(!t.runtime.calls.includes(`pull ${PAUSE_IMAGE}`), 'nor its image');
      const calls = t.runtime.calls.filter((c) => !c.startsWith('pull'));
      // ADD does not wait for the images or the creates; the starts wait for ADD.
      assert.equal(calls[0], 'network add (namespace made)', calls.join(', '));
      const after = (call: string, earlier: string) => assert.ok(calls.indexOf(earlier) < calls.indexOf(call), `${earlier} before ${call}: ${calls.join(', ')}`);
      after('start web', 'network add (namespace made)');
      after('start side', 'network add (namespace made)');
      const web = [...t.runtime.containers.values()].find((c) => c.labels['berth.container-name'] === 'web')!;
      assert.equal(web.spec.network, 'namespace');
      assert.equal(web.spec.networkNamespacePath, '/run/netns/berth-unit-t');
      assert.equal(web.spec.networkContainer, undefined);
      assert.deepEqual(web.spec.ports, [], "port mappings are the network's, not the runtime's");
      assert.deepEqual(stub.portMappings, [[{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]]);
      assert.deepEqual(t.engine.getTask('t').network?.ipAddresses, ['10.9.0.2/24']);
    });

    it('while ADD runs, prepares the start of the containers (their task created in the namespace); a stop then undoes it', async () => {
      await setup({ joinsNetworkNamespaces: true });
      let release!: () => void;
      stub.holdAdd = new Promise((resolve) => (release = resolve));
      t.engine.runTask({ ...taskInput('t', [containerInput('app')]), networkMode: 'TASK' });
      await untilCalled(t.runtime, 'prepare app');
      assert.ok(!t.runtime.calls.includes('start app'), 'not started before the network is set up');
      release();
      await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
      const calls = t.runtime.calls.filter((c) => !c.startsWith('pull'));
      assert.deepEqual(calls, ['create app', 'prepare app', 'network add (namespace made)', 'start app']);

      t.runtime.calls.length = 0;
      stub.holdAdd = new Promise((resolve) => (release = resolve));
      t.engine.runTask({ ...taskInput('u', [containerInput('app')]), networkMode: 'TASK' });
      await untilCalled(t.runtime, 'prepare app');
      t.engine.stopTask('u', 'test');
      release();
      await t.waitFor('task STOPPED', taskStatus('u', 'STOPPED'));
      assert.deepEqual(
        t.runtime.calls.filter((c) => !c.startsWith('pull')),
        ['create app', 'prepare app', 'network add (namespace made)', 'stop app', 'network del'],
      );
      assert.equal(t.engine.getTask('u').containers[0]?.reason, 'the task stopped before the container started');
      // The exit the runtime reports for the process it deleted does not make the container seem to have run.
      const seen = t.store.events
        .readFrom(1, 1000)
        .filter((e) => e.taskId === 'u' && e.change.type === 'container')
        .map((e) => (e.change.type === 'container' ? e.change.container.knownStatus : ''));
      assert.ok(!seen.includes('RUNNING'), seen.join(', '));
    });

    it('on stop: the containers stop, then DEL; the task is STOPPED (and its ports free) only once DEL is done', async () => {
      await setup({ joinsNetworkNamespaces: true });
      t.engine.runTask({ ...taskInput('t', [containerInput('app')]), networkMode: 'TASK' });
      await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
      t.runtime.calls.length = 0;
      let release!: () => void;
      stub.holdTearDown = new Promise((resolve) => (release = resolve));
      t.engine.stopTask('t', 'test');
      await t.waitFor('app STOPPED', containerStatus('t', 'app', 'STOPPED'));
      assert.equal(t.engine.getTask('t').knownStatus, 'RUNNING', 'not STOPPED while DEL runs');
      release();
      await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
      assert.deepEqual(t.runtime.calls, ['stop app', 'network del']);
      assert.equal(t.engine.getTask('t').network, undefined);
    });

    it('a failed set-up stops the task with its reason before any container starts', async () => {
      await setup({ joinsNetworkNamespaces: true });
      stub.failWith = 'CNI ADD failed in plugin "bridge": no luck';
      t.engine.runTask({ ...taskInput('t', [containerInput('app')]), networkMode: 'TASK' });
      await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
      assert.equal(t.engine.getTask('t').reason, 'cannot set up the task\'s network: CNI ADD failed in plugin "bridge": no luck');
      assert.ok(!t.runtime.calls.includes('start app'));
      assert.equal(t.runtime.calls.at(-1), 'network del');
      assert.equal(stub.hasAttachment('t'), false);
    });

    it('keeps a pause container for a task whose containers share process or IPC namespaces', async () => {
      await setup({ joinsNetworkNamespaces: true });
      t.engine.runTask({ ...taskInput('t', [containerInput('app')]), networkMode: 'TASK', pidMode: 'TASK' });
      await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
      assert.ok(t.runtime.calls.includes('start berth.pause'));
      assert.ok(t.runtime.calls.includes('network add (pid known)'));
    });

    it('a task an earlier run of the agent gave a pause container keeps it', async () => {
      await setup({ joinsNetworkNamespaces: false });
      t.engine.runTask({ ...taskInput('t', [containerInput('app')]), networkMode: 'TASK' });
      await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
      await t.engine.stop();
      const { runtime } = t;
      await setup({ joinsNetworkNamespaces: true, earlier: t });
      await t.engine.recovery;
      runtime.calls.length = 0;
      t.engine.stopTask('t', 'test');
      await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
      assert.deepEqual(runtime.calls, ['stop app', 'network del', 'stop berth.pause', 'remove berth.pause']);
    });
  });

  describe('with warm pause containers', () => {
    it('a task without needs of its own takes one: no pause container made, no ADD; its containers join it; a stop deletes it after DEL', async () => {
      await setup();
      const warmId = await stub.makeWarm('berth-unit-warm-1');
      const warm = t.runtime.containers.get(warmId)!;
      assert.equal(warm.spec.network, 'none');
      assert.equal(warm.spec.labels['berth.agent-id'], 'unit');
      assert.equal(warm.spec.labels['berth.task-id'], undefined, "a warm pause container is no task's");
      t.runtime.calls.length = 0;
      t.engine.runTask({ ...taskInput('t', [containerInput('app')]), networkMode: 'TASK' });
      await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
      assert.deepEqual(stub.launchesEnded, ['t'], 'the pool may make namespaces again once the task runs');
      assert.deepEqual(
        t.runtime.calls.filter((c) => !c.startsWith('pull') && !c.startsWith('check')),
        ['create app', 'start app'],
      );
      const app = [...t.runtime.containers.values()].find((c) => c.labels['berth.container-name'] === 'app')!;
      assert.deepEqual(app.spec.networkContainer, { id: warmId, netnsPath: '/run/netns/berth-unit-t' });
      assert.deepEqual(t.engine.getTask('t').network?.ipAddresses, ['10.9.0.7/24']);
      assert.equal(stub.warm.length, 0);
      const events = t.store.events.readFrom(1, 1000);
      assert.ok(events.some((e) => e.change.type === 'network' && e.change.network?.ipAddresses[0] === '10.9.0.7/24'));
      t.runtime.calls.length = 0;
      t.engine.stopTask('t', 'test');
      await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
      assert.deepEqual(t.runtime.calls, ['stop app', 'network del', 'stop berth.pause', 'remove berth.pause']);
      assert.equal(t.runtime.containers.has(warmId), false);
    });

    it('a task with a host port, a shared process namespace or task-level limits makes a pause container of its own', async () => {
      await setup();
      await stub.makeWarm('berth-unit-warm-1');
      t.engine.runTask({ ...taskInput('ports', [containerInput('web', { portMappings: [{ containerPort: 80, hostPort: 8080 }] })]), networkMode: 'TASK' });
      t.engine.runTask({ ...taskInput('pid', [containerInput('app')]), networkMode: 'TASK', pidMode: 'TASK' });
      t.engine.runTask({ ...taskInput('limits', [containerInput('app')]), networkMode: 'TASK', memoryMib: 64 });
      for (const id of ['ports', 'pid', 'limits']) await t.waitFor(`${id} RUNNING`, taskStatus(id, 'RUNNING'));
      assert.equal(stub.warm.length, 1, 'the warm one is still there');
      assert.equal(t.runtime.calls.filter((c) => c === 'create berth.pause').length, 1 + 3);
      assert.equal(t.runtime.calls.filter((c) => c === 'network add (pid known)').length, 3);
    });

    it('the task keeps the one it took across a restart of the agent', async () => {
      await setup();
      const warmId = await stub.makeWarm('berth-unit-warm-1');
      t.engine.runTask({ ...taskInput('t', [containerInput('app')]), networkMode: 'TASK' });
      await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
      await t.engine.stop();
      const { runtime } = t;
      await setup({ earlier: t });
      await t.engine.recovery;
      assert.equal(t.engine.getTask('t').knownStatus, 'RUNNING');
      runtime.calls.length = 0;
      t.engine.stopTask('t', 'test');
      await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
      assert.deepEqual(runtime.calls, ['stop app', 'network del', 'stop berth.pause', 'remove berth.pause']);
      assert.equal(runtime.containers.has(warmId), false);
    });

    it('one no task took is not an orphan; one found not running leaves the pool', async () => {
      await setup({ orphanGracePeriodMs: 0 });
      const warmId = await stub.makeWarm('berth-unit-warm-1');
      await t.engine.synchronize();
      await t.engine.synchronize();
      assert.ok(t.runtime.containers.has(warmId));
      assert.deepEqual(stub.dropped, []);
      t.runtime.exit('berth.pause', 137);
      await t.engine.synchronize();
      assert.deepEqual(stub.dropped, ['berth-unit-warm-1']);
    });
  });

  it('uses no pause container and no CNI in bridge mode on a runtime with a bridge of its own', async () => {
    await setup();
    t.engine.runTask({ ...taskInput('t', [containerInput('app')]), networkMode: 'BRIDGE' });
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    assert.deepEqual(
      t.runtime.calls.filter((c) => !c.startsWith('pull')),
      ['create app', 'start app'],
    );
    assert.equal(t.engine.getTask('t').network, undefined);
  });
});
