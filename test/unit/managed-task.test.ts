import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { AlreadyExistsError, NotFoundError } from '../../src/engine/errors.js';
import { runtimeContainerName } from '../../src/engine/tasks/labels.js';
import { OOM_REASON } from '../../src/engine/tasks/managed-container.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import { containerInput, containerStatus, engineUnderTest, taskInput, taskStatus, type EngineUnderTest } from '../harness/engine-harness.js';

const IMAGE = 'registry.test/app:1';

describe('managed task rules (fake runtime)', () => {
  let t: EngineUnderTest;
  afterEach(async () => {
    await t?.stop();
  });

  async function setup(options?: { taskCleanupWaitMs?: number }) {
    t = await engineUnderTest(options);
    t.runtime.registry.add(IMAGE);
    return t;
  }

  it('starts a SUCCESS dependent only after its dependency exited with 0', async () => {
    await setup();
    t.runtime.exitOnStart.set('init', 0);
    t.engine.runTask(taskInput('t', [containerInput('init', { essential: false }), containerInput('app', { dependsOn: [{ containerName: 'init', condition: 'SUCCESS' }] })]));
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    const starts = t.runtime.calls.filter((c) => c.startsWith('start'));
    assert.deepEqual(starts, ['start init', 'start app']);
    const task = t.engine.getTask('t');
    assert.equal(task.containers.find((c) => c.name === 'init')?.exitCode, 0);
  });

  it('stops the task when a SUCCESS dependency exits non-zero, without starting the dependent', async () => {
    await setup();
    t.runtime.exitOnStart.set('init', 2);
    t.engine.runTask(taskInput('t', [containerInput('init', { essential: false }), containerInput('app', { dependsOn: [{ containerName: 'init', condition: 'SUCCESS' }] })]));
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    assert.ok(!t.runtime.calls.includes('start app'));
    const task = t.engine.getTask('t');
    assert.match(task.reason, /dependency "init" exited with code 2 \(condition SUCCESS\)/);
    assert.equal(task.containers.find((c) => c.name === 'app')?.reason, 'the task stopped before the container started');
  });

  it('stops every container, dependents first, when an essential container exits', async () => {
    await setup();
    t.engine.runTask(
      taskInput('t', [containerInput('db', { essential: false }), containerInput('app', { essential: false, dependsOn: [{ containerName: 'db', condition: 'START' }] }), containerInput('job')]),
    );
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    t.runtime.exit('job', 4);
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    const stops = t.runtime.calls.filter((c) => c.startsWith('stop'));
    assert.deepEqual(stops, ['stop app', 'stop db']);
    const task = t.engine.getTask('t');
    assert.equal(task.reason, 'essential container "job" exited with code 4');
    assert.equal(task.desiredStatus, 'STOPPED');
  });

  it("gives an OOM kill reported after the exit it caused (as Docker can) as that exit's reason, and not as the next run's", async () => {
    await setup();
    t.engine.runTask(
      taskInput('t', [
        containerInput('main'),
        containerInput('after', { essential: false }),
        containerInput('restarted', { essential: false, restartPolicy: { enabled: true, restartAttemptPeriodMs: 0 } }),
      ]),
    );
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    const reasonOf = (name: string) => t.engine.getTask('t').containers.find((c) => c.name === name)?.reason;
    t.runtime.oomKill('after', 'exit first');
    await t.waitFor('after stopped for its memory', (e) => e.change.type === 'container' && e.change.container.name === 'after' && e.change.container.reason === OOM_REASON);
    // A kill reported after the exit, while the container waits to be restarted, is not the next run's.
    t.runtime.oomKill('restarted', 'exit first');
    await t.waitFor('restarted once', (e) => e.change.type === 'container' && e.change.container.name === 'restarted' && e.change.container.restartCount === 1);
    t.engine.stopTask('t', 'done');
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    assert.notEqual(reasonOf('restarted'), OOM_REASON);
    assert.equal(reasonOf('after'), OOM_REASON);
  });

  it('gives an OOM kill reported before the exit as the reason of the exit', async () => {
    await setup();
    t.engine.runTask(taskInput('t', [containerInput('before')]));
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    t.runtime.oomKill('before', 'oom first');
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    assert.equal(t.engine.getTask('t').containers[0]?.reason, OOM_REASON);
  });

  it('keeps running when a non-essential container exits', async () => {
    await setup();
    t.engine.runTask(taskInput('t', [containerInput('main'), containerInput('side', { essential: false })]));
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    t.runtime.exit('side', 1);
    await t.waitFor('side STOPPED', containerStatus('t', 'side', 'STOPPED'));
    assert.equal(t.engine.getTask('t').knownStatus, 'RUNNING');
    assert.equal(t.engine.getTask('t').desiredStatus, 'RUNNING');
  });

  it('lets StopTask win over a pull in progress: the pull is abandoned and nothing is created', async () => {
    await setup();
    t.runtime.heldPulls.set(IMAGE, () => undefined);
    const pulling = new Promise((resolve) => (t.runtime.onPull = resolve));
    t.engine.runTask(taskInput('t', [containerInput('app')]));
    await pulling;
    t.engine.stopTask('t', 'changed my mind');
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    const task = t.engine.getTask('t');
    assert.equal(task.reason, 'changed my mind');
    assert.equal(task.containers[0]?.reason, 'the task was stopped before the image was pulled');
    assert.ok(!t.runtime.calls.some((c) => c.startsWith('create')));
  });

  it('uses a cached image when the pull fails (default pull behaviour)', async () => {
    await setup();
    t.runtime.registry.delete(IMAGE);
    t.runtime.local.add(IMAGE);
    t.engine.runTask(taskInput('t', [containerInput('app')]));
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
  });

  it('moves the task status only forward, through every stage', async () => {
    await setup();
    t.engine.runTask(taskInput('t', [containerInput('app')]));
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    t.engine.stopTask('t', '');
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    const watcher = t.events.watch(1);
    const events = (await watcher.next(10)) ?? [];
    watcher.close();
    const order = ['NONE', 'PULLED', 'CREATED', 'RUNNING', 'STOPPED'];
    const statuses = events.flatMap((e) => (e.change.type === 'task' ? [e.change.knownStatus] : []));
    statuses.forEach((s, i) => i > 0 && assert.ok(order.indexOf(s) >= order.indexOf(statuses[i - 1]!), statuses.join(' → ')));
    assert.deepEqual([...new Set(statuses)], order);
  });

  it('is idempotent on the task id, refuses another definition under it, and knows unknown ids', async () => {
    await setup();
    const first = t.engine.runTask(taskInput('t', [containerInput('app')]));
    const again = t.engine.runTask(taskInput('t', [containerInput('app')]));
    assert.equal(first.created, true);
    assert.equal(again.created, false);
    assert.throws(() => t.engine.runTask(taskInput('t', [containerInput('other')])), AlreadyExistsError);
    assert.throws(() => t.engine.getTask('nope'), NotFoundError);
    assert.throws(() => t.engine.stopTask('nope', ''), NotFoundError);
  });

  it('gives distinct runtime names to tasks whose ids and container names would join alike', async () => {
    await setup();
    t.engine.runTask(taskInput('a', [containerInput('b-c')]));
    t.engine.runTask(taskInput('a-b', [containerInput('c')]));
    await t.waitFor('task a RUNNING', taskStatus('a', 'RUNNING'));
    await t.waitFor('task a-b RUNNING', taskStatus('a-b', 'RUNNING'));
    const names = ['a', 'a-b'].map((id) => t.engine.getTask(id).containers[0]!.runtimeName);
    assert.notEqual(names[0], names[1]);
  });

  it('derives runtime names no two (agent, task, container) triples share (ids start with a letter or digit)', () => {
    const triples: [string, string, string][] = [
      ['n', 'a', 'b-c'],
      ['n', 'a-b', 'c'],
      ['n', 'a.b', 'c'],
      ['n', 'a', 'berth.pause'],
      ['n', 'a.berth', 'pause'],
      ['n.a', 'b', 'c'],
      ['n', 'a.b', 'c'],
      ['n-a', 'b', 'c'],
      ['n', 'a-b', 'c'],
      ['n.', 'a', 'c'],
      ['n', 'a.', 'c'],
      ['n', 'a..', 'c'],
    ];
    const seen = new Map<string, string>();
    for (const triple of triples) {
      const name = runtimeContainerName(...triple);
      assert.match(name, /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/, 'a valid Docker name');
      const other = seen.get(name);
      assert.ok(other === undefined || other === triple.join('/'), `${triple.join('/')} and ${other} both map to ${name}`);
      seen.set(name, triple.join('/'));
    }
  });

  it('lets no task into the engine whose record did not commit', async () => {
    await setup();
    const original = t.store.transaction.bind(t.store);
    t.store.transaction = () => {
      throw new Error('disk I/O error');
    };
    assert.throws(() => t.engine.runTask(taskInput('t', [containerInput('app')])), /disk I\/O error/);
    t.store.transaction = original;
    assert.throws(() => t.engine.getTask('t'), NotFoundError);
    t.engine.runTask(taskInput('t', [containerInput('app')]));
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
  });

  it('adopts a container of its own name and labels (created before a crash) instead of failing', async () => {
    await setup();
    const spec = { image: IMAGE, env: {}, cpuShares: 0, memoryBytes: 0, memoryReservationBytes: 0, network: 'none' as const, ports: [] };
    const labels = { 'berth.task-id': 't', 'berth.container-name': 'app', 'berth.agent-id': 'unit' };
    const existing = await t.runtime.createContainer({ ...spec, name: runtimeContainerName('unit', 't', 'app'), labels });
    await t.runtime.createContainer({ ...spec, name: runtimeContainerName('unit', 'u', 'app'), labels: { 'berth.container-name': 'app' } });
    await t.runtime.createContainer({ ...spec, name: runtimeContainerName('unit', 'v', 'app'), labels: { ...labels, 'berth.task-id': 'v' } });
    // The inspection of the container found fails: once with a timeout for t's (retried), for
    // good for v's.
    const inspect = t.runtime.inspectContainer.bind(t.runtime);
    let timedOut = false;
    t.runtime.inspectContainer = async (idOrName: string) => {
      if (idOrName === runtimeContainerName('unit', 't', 'app') && !timedOut && (timedOut = true)) throw new RuntimeError('timeout', 'inspect', 'no answer');
      if (idOrName === runtimeContainerName('unit', 'v', 'app')) throw new RuntimeError('internal', 'inspect', 'the store is broken');
      return inspect(idOrName);
    };
    t.engine.runTask(taskInput('t', [containerInput('app')]));
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    assert.equal(t.engine.getTask('t').containers[0]?.runtimeId, existing);
    assert.ok(timedOut, 'adopted after an inspection that timed out, tried again');

    t.engine.runTask(taskInput('u', [containerInput('app')]));
    await t.waitFor('task u STOPPED', taskStatus('u', 'STOPPED'));
    assert.match(t.engine.getTask('u').containers[0]?.reason ?? '', /taken by a container this task does not own/);

    t.engine.runTask(taskInput('v', [containerInput('app')]));
    await t.waitFor('task v STOPPED', taskStatus('v', 'STOPPED'));
    assert.match(t.engine.getTask('v').containers[0]?.reason ?? '', /is taken, and that container cannot be inspected: .*the store is broken/);
  });

  it('catches an exit the event stream missed at the next relist', async () => {
    t = await engineUnderTest({ relistIntervalMs: 50 });
    t.runtime.registry.add(IMAGE);
    t.engine.runTask(taskInput('t', [containerInput('app')]));
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    t.runtime.exitSilently('app', 7);
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    assert.equal(t.engine.getTask('t').containers[0]?.exitCode, 7);
  });

  it('says why a task waits: pulling, then dependencies', async () => {
    await setup();
    t.runtime.heldPulls.set(IMAGE, () => undefined);
    const pulling = new Promise((resolve) => (t.runtime.onPull = resolve));
    t.engine.runTask(taskInput('t', [containerInput('app')]));
    await pulling;
    await t.waitFor('pulling reason', (e) => e.change.type === 'task' && e.change.reason === `pulling image "${IMAGE}"`);
    t.runtime.releasePull(IMAGE);
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    assert.equal(t.engine.getTask('t').reason, '');
  });

  it('removes the containers after the cleanup wait and forgets the task', async () => {
    await setup({ taskCleanupWaitMs: 10 });
    t.runtime.exitOnStart.set('app', 0);
    t.engine.runTask(taskInput('t', [containerInput('app')]));
    await t.waitFor('task removed', (e) => e.taskId === 't' && e.change.type === 'removed');
    assert.ok(t.runtime.calls.includes('remove app'));
    assert.equal(t.runtime.containers.size, 0);
    assert.throws(() => t.engine.getTask('t'), NotFoundError);
  });
});

describe('task listing', () => {
  it('filters by known status and family', async () => {
    const t = await engineUnderTest();
    try {
      t.runtime.registry.add(IMAGE);
      t.engine.runTask({ ...taskInput('a', [containerInput('app')]), family: 'web' });
      t.engine.runTask({ ...taskInput('b', [containerInput('app')]), family: 'batch' });
      await t.waitFor('a RUNNING', taskStatus('a', 'RUNNING'));
      await t.waitFor('b RUNNING', taskStatus('b', 'RUNNING'));
      t.engine.stopTask('b', '');
      await t.waitFor('b STOPPED', taskStatus('b', 'STOPPED'));
      assert.deepEqual(
        t.engine.listTasks({ family: 'web' }).map((x) => x.definition.id),
        ['a'],
      );
      assert.deepEqual(
        t.engine.listTasks({ statuses: ['STOPPED'] }).map((x) => x.definition.id),
        ['b'],
      );
      assert.deepEqual(
        t.engine
          .listTasks({ statuses: ['RUNNING', 'STOPPED'] })
          .map((x) => x.definition.id)
          .sort(),
        ['a', 'b'],
      );
      assert.equal(t.engine.listTasks({ family: 'none' }).length, 0);
    } finally {
      await t.stop();
    }
  });
});
