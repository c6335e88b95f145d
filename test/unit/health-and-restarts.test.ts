import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { decideRestart, restartRetryDelayMs } from '../../src/engine/tasks/restart-policy.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import { containerInput, containerStatus, engineUnderTest, taskInput, taskStatus, type EngineUnderTest } from '../harness/engine-harness.js';

const IMAGE = 'registry.test/app:1';
const backoff = { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 };
const health = (event: { change: { type: string; container?: { name: string; healthStatus: string } } }, name: string, status: string) =>
  event.change.type === 'container' && event.change.container?.name === name && event.change.container.healthStatus === status;

describe('restart policy decisions', () => {
  const policy = { enabled: true, ignoredExitCodes: [3], restartAttemptPeriodMs: 0 };
  it('backs off from the initial delay, doubling up to the cap, and resets after a long run', () => {
    assert.deepEqual(decideRestart(policy, 1, 100, 0, backoff), { restart: true, delayMs: 10_000 });
    assert.deepEqual(decideRestart(policy, 1, 100, 10_000, backoff), { restart: true, delayMs: 20_000 });
    assert.deepEqual(decideRestart(policy, 1, 100, 160_000, backoff), { restart: true, delayMs: 300_000 });
    assert.deepEqual(decideRestart(policy, 1, 700_000, 300_000, backoff), { restart: true, delayMs: 10_000 });
  });
  it('waits longer after each failed restart the runtime answered, up to the cap, and the first wait while it is down', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 10].map((failures) => restartRetryDelayMs(10_000, failures, backoff)),
      [10_000, 10_000, 20_000, 40_000, 80_000, 300_000],
    );
    assert.equal(restartRetryDelayMs(0, 0, backoff), 10_000, 'never less than the initial delay');
    assert.equal(restartRetryDelayMs(0, 3, { ...backoff, initialMs: 400_000 }), 400_000, 'an initial delay above the cap is kept');
  });
  it('does not restart ignored exit codes, short runs under an attempt period, or without a policy', () => {
    assert.match((decideRestart(policy, 3, 100, 0, backoff) as { reason: string }).reason, /ignores/);
    assert.match((decideRestart({ ...policy, restartAttemptPeriodMs: 300_000 }, 1, 5_000, 0, backoff) as { reason: string }).reason, /less than the restart attempt period of 300 s/);
    assert.equal(decideRestart({ ...policy, restartAttemptPeriodMs: 300_000 }, 1, 301_000, 0, backoff).restart, true);
    assert.equal(decideRestart(undefined, 1, 100, 0, backoff).restart, false);
  });
});

describe('health checks and restarts in a task (fake runtime)', () => {
  let t: EngineUnderTest;
  afterEach(async () => {
    await t?.stop();
  });
  async function setup() {
    t = await engineUnderTest();
    t.runtime.registry.add(IMAGE);
  }
  const check = { command: ['check'], intervalMs: 100, timeoutMs: 1000, retries: 2, startPeriodMs: 0 };
  /** Answers probes with `answer` and resolves `reached(n)` once n probes ran. */
  function probes(answer: () => { exitCode: number; output: string }) {
    let count = 0;
    const waiting: { n: number; resolve: () => void }[] = [];
    t.runtime.execResult = () => {
      count++;
      for (const w of waiting.filter((x) => count >= x.n)) w.resolve();
      const { exitCode, output } = answer();
      return { exitCode, output: Buffer.from(output) };
    };
    return { reached: (n: number) => new Promise<void>((resolve) => (count >= n ? resolve() : waiting.push({ n, resolve }))) };
  }

  it('starts a HEALTHY dependent only once the dependency passes its health check', async () => {
    await setup();
    let healthy = false;
    const probing = probes(() => (healthy ? { exitCode: 0, output: 'ok' } : { exitCode: 1, output: 'not yet' }));
    t.engine.runTask(
      taskInput('t', [containerInput('db', { essential: false, healthCheck: { ...check, retries: 100 } }), containerInput('app', { dependsOn: [{ containerName: 'db', condition: 'HEALTHY' }] })]),
    );
    await t.waitFor('db RUNNING', containerStatus('t', 'db', 'RUNNING'));
    await probing.reached(2);
    assert.ok(!t.runtime.calls.includes('start app'), 'app waits while db is not healthy');
    assert.match(t.engine.getTask('t').reason, /waiting for container "db" to become healthy/);
    healthy = true;
    await t.waitFor('db HEALTHY', (e) => e.taskId === 't' && health(e as never, 'db', 'HEALTHY'));
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    const db = t.engine.getTask('t').containers.find((c) => c.name === 'db')!;
    assert.equal(db.healthOutput, 'ok');
    assert.ok(db.healthCheckedAt instanceof Date);
  });

  it('reports UNHEALTHY after `retries` failures, with the last output, one event per change', async () => {
    await setup();
    const probing = probes(() => ({ exitCode: 1, output: 'x'.repeat(5000) }));
    t.engine.runTask(taskInput('t', [containerInput('app', { healthCheck: check })]));
    await t.waitFor('UNHEALTHY', (e) => health(e as never, 'app', 'UNHEALTHY'));
    await probing.reached(4);
    const app = t.engine.getTask('t').containers[0]!;
    assert.equal(app.healthStatus, 'UNHEALTHY');
    assert.ok(app.healthOutput.length <= 1024);
    const watcher = t.events.watch(1);
    const events = (await watcher.next(10)) ?? [];
    watcher.close();
    assert.equal(events.filter((e) => health(e as never, 'app', 'UNHEALTHY')).length, 1, 'one event for the change, not one per probe');
  });

  it('stops the task when a HEALTHY dependency misses its start timeout', async () => {
    await setup();
    t.runtime.execResult = () => ({ exitCode: 1, output: Buffer.alloc(0) });
    t.engine.runTask(
      taskInput('t', [
        containerInput('db', { essential: false, healthCheck: { ...check, retries: 100 }, startTimeoutMs: 300 }),
        containerInput('app', { dependsOn: [{ containerName: 'db', condition: 'HEALTHY' }] }),
      ]),
    );
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    assert.match(t.engine.getTask('t').reason, /dependency "db" did not become healthy within its start timeout of 300 ms/);
  });

  it('restarts a failing container with growing back-off and counts the restarts', async () => {
    await setup();
    t.runtime.exitOnStart.set('app', 1);
    t.engine.runTask(taskInput('t', [containerInput('app', { restartPolicy: { enabled: true, restartAttemptPeriodMs: 0 } })]));
    await t.waitFor('third restart', (e) => e.change.type === 'container' && e.change.container.restartCount === 3);
    const app = t.engine.getTask('t').containers[0]!;
    assert.equal(app.knownStatus, 'RUNNING');
    assert.equal(app.lastExitCode, 1);
    assert.ok(app.lastRestartedAt instanceof Date);
    const watcher = t.events.watch(1);
    const events = (await watcher.next(10)) ?? [];
    watcher.close();
    const restarts = events.filter((e) => e.change.type === 'container' && /restarting in/.test(e.change.container.reason));
    const delays = restarts.map((e) => Number(/restarting in (\d+) ms/.exec((e.change as { container: { reason: string } }).container.reason)![1]));
    assert.deepEqual(delays.slice(0, 3), [20, 40, 80]);
    t.engine.stopTask('t', '');
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
  });

  /** Records when each start of the app was asked for, and resolves `reached(n)` once n were. */
  function starts() {
    const at: number[] = [];
    const waiting: { n: number; resolve: () => void }[] = [];
    const start = t.runtime.startContainer.bind(t.runtime);
    t.runtime.startContainer = (id) => {
      at.push(performance.now());
      for (const w of waiting.filter((x) => at.length >= x.n)) w.resolve();
      return start(id);
    };
    return {
      at,
      reached: (n: number) =>
        new Promise<void>((resolve, reject) => {
          if (at.length >= n) return resolve();
          const timer = setTimeout(() => reject(new Error(`${at.length} starts of ${n} within 5 s`)), 5000);
          waiting.push({ n, resolve: () => (clearTimeout(timer), resolve()) });
        }),
      /** The time between each start and the one before it. */
      gaps: () => at.slice(1).map((time, i) => time - at[i]!),
    };
  }

  it('gives a restart up after five failures the runtime answered, waiting longer after each', async () => {
    await setup();
    const app = starts();
    t.engine.runTask(taskInput('t', [containerInput('app', { restartPolicy: { enabled: true, restartAttemptPeriodMs: 0 } })]));
    await t.waitFor('app RUNNING', containerStatus('t', 'app', 'RUNNING'));
    t.runtime.failingStarts.set('app', 'no such file');
    t.runtime.exit('app', 1);
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    const container = t.engine.getTask('t').containers[0]!;
    assert.equal(container.reason, 'cannot restart container: start container c1: no such file');
    assert.equal(container.restartCount, 0);
    // The first start, the restart after the exit's back-off, and four more tries.
    assert.equal(app.at.length, 1 + 5);
    const waits = app.gaps().slice(1);
    [20, 40, 80, 80].forEach((wait, i) => assert.ok(waits[i]! >= wait - 1, `try ${i + 2} came ${waits[i]} ms after the one before, not ${wait} or more: ${waits.join(', ')}`));
  });

  it('does not count restart tries that fail while the runtime is down', async () => {
    await setup();
    const app = starts();
    t.engine.runTask(taskInput('t', [containerInput('app', { restartPolicy: { enabled: true, restartAttemptPeriodMs: 0 } })]));
    await t.waitFor('app RUNNING', containerStatus('t', 'app', 'RUNNING'));
    const ping = t.runtime.ping.bind(t.runtime);
    t.runtime.failingStarts.set('app', 'connect ENOENT');
    t.runtime.ping = () => Promise.reject(new RuntimeError('unavailable', 'ping docker', 'connect ENOENT'));
    t.runtime.exit('app', 1);
    await app.reached(1 + 8);
    assert.match(t.engine.getTask('t').containers[0]!.reason, /connect ENOENT; trying again in 20 ms$/, 'tries while the runtime is down wait the first back-off');
    // The runtime answers again but the start still fails once, then goes through.
    t.runtime.ping = ping;
    await app.reached(1 + 10);
    t.runtime.failingStarts.delete('app');
    await t.waitFor('restarted', (e) => e.change.type === 'container' && e.change.container.restartCount === 1);
    const container = t.engine.getTask('t').containers[0]!;
    assert.equal(container.knownStatus, 'RUNNING');
    assert.equal(container.reason, '');
    t.engine.stopTask('t', '');
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
  });

  // StopTask during a back-off: test/scenarios/health-and-restarts.ts, on both runtimes.
  it('does not restart an ignored exit code', async () => {
    await setup();
    t.runtime.exitOnStart.set('ignored', 3);
    t.engine.runTask(taskInput('t', [containerInput('ignored', { restartPolicy: { enabled: true, ignoredExitCodes: [3], restartAttemptPeriodMs: 0 } })]));
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    assert.match(t.engine.getTask('t').containers[0]!.reason, /which the restart policy ignores/);
    assert.equal(t.runtime.calls.filter((c) => c === 'start ignored').length, 1);
  });
});
