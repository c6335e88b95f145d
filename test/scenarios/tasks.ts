import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ClientReadableStream } from '@grpc/grpc-js';
import { LogStream, type LogLine, type LogsRequest, type LogsResponse, type StatsRequest, type StatsResponse } from '../../src/gen/berth/agent/v1/task_service.js';
import { readStream, startTestAgent, watching, type TestAgent } from '../harness/agent.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { containersSeenByDaemon } from '../harness/daemon-witness.js';
import { textOnceServed } from '../harness/processes.js';
import { container, containerOf, ContainerStatus, DependencyCondition, dependsOn, is, NetworkMode, task, taskId, TaskStatus } from '../harness/task-builders.js';

/** Tasks end to end over gRPC, on a real daemon of the given runtime. */
export function taskScenarios(kind: RuntimeKind): void {
  describe(`tasks on a real ${kind}, end to end over gRPC`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    const creds = () => ({ registryCredentials: env.credentials });

    before(async () => {
      env = await startRuntimeEnvironment('tasks', kind);
      agent = await startTestAgent(env);
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });

    const run = (definition: ReturnType<typeof task>) => agent.calls.run(definition);
    const stop = (id: string) => agent.calls.stop(id);
    const get = (id: string) => agent.calls.get(id);

    it('runs a two-container task in dependency order and streams its events in order, without gaps', async () => {
      const id = taskId('order');
      await watching(agent.client, {}, async (watch) => {
        const definition = task(id, [
          container('init', env.image, { ...creds(), command: ['sh', '-c', 'echo preparing; exit 0'], essential: false }),
          container('app', env.image, { ...creds(), command: ['sleep', '300'], dependsOn: [dependsOn('init', DependencyCondition.DEPENDENCY_CONDITION_SUCCESS)] }),
        ]);
        const response = await run(definition);
        assert.equal(response.created, true);
        assert.equal(response.task?.definition?.id, id);

        await watch.waitForEvent('task RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING));
        const events = watch.events.filter((e) => e.taskId === id);
        const index = (predicate: (e: (typeof events)[number]) => boolean) => events.findIndex(predicate);
        const initStopped = index(is.container(id, 'init', ContainerStatus.CONTAINER_STATUS_STOPPED));
        const appRunning = index(is.container(id, 'app', ContainerStatus.CONTAINER_STATUS_RUNNING));
        assert.ok(initStopped >= 0 && appRunning > initStopped, 'app must start only after init exited with 0');
        const initExit = events[initStopped]!.change;
        assert.ok(initExit?.$case === 'container');
        assert.equal(initExit.value.container?.exitCode, 0);

        const sequences = watch.events.map((e) => e.sequence);
        sequences.forEach((sequence, i) => i > 0 && assert.equal(sequence, sequences[i - 1]! + 1, `gap after ${sequences[i - 1]}`));

        const running = await get(id);
        assert.equal(running?.knownStatus, TaskStatus.TASK_STATUS_RUNNING);
        const app = containerOf(running, 'app');
        assert.ok(app.runtimeId.length > 0);
        assert.ok(app.startedAt instanceof Date);
        const inspected = await env.runtime.inspectContainer(app.runtimeId);
        assert.equal(inspected.state, 'running');
        assert.equal(inspected.labels['berth.task-id'], id);
        assert.equal(inspected.labels['berth.container-name'], 'app');
        assert.equal(inspected.labels['berth.agent-id'], agent.config.agentId);
        assert.equal(inspected.name, app.runtimeName);

        const stopped = await stop(id);
        assert.equal(stopped.task?.desiredStatus, TaskStatus.TASK_STATUS_STOPPED);
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
        const final = await get(id);
        assert.equal(final?.knownStatus, TaskStatus.TASK_STATUS_STOPPED);
        assert.equal(final?.reason, 'stopped by request');
        assert.ok(containerOf(final, 'app').finishedAt instanceof Date);
      });
    });

    it('stops the whole task with the exit code when an essential container exits', async () => {
      const id = taskId('essential');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(
          task(id, [
            container('worker', env.image, { ...creds(), command: ['sh', '-c', 'sleep 1; exit 3'] }),
            container('sidecar', env.image, { ...creds(), command: ['sleep', '300'], essential: false }),
          ]),
        );
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
        const final = await get(id);
        assert.equal(containerOf(final, 'worker').exitCode, 3);
        assert.match(final?.reason ?? '', /essential container "worker" exited with code 3/);
        assert.equal(containerOf(final, 'sidecar').knownStatus, ContainerStatus.CONTAINER_STATUS_STOPPED);
        assert.ok(
          watch.events.every((e) => e.taskId === id),
          'the task filter lets only this task through',
        );
      });
    });

    it('keeps the task running when a non-essential container exits', async () => {
      const id = taskId('nonessential');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(
          task(id, [container('main', env.image, { ...creds(), command: ['sleep', '300'] }), container('oneshot', env.image, { ...creds(), command: ['sh', '-c', 'exit 1'], essential: false })]),
        );
        await watch.waitForEvent('oneshot STOPPED', is.container(id, 'oneshot', ContainerStatus.CONTAINER_STATUS_STOPPED));
        await watch.waitForEvent('task RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING));
        const current = await get(id);
        assert.equal(current?.desiredStatus, TaskStatus.TASK_STATUS_RUNNING);
        assert.equal(containerOf(current, 'oneshot').exitCode, 1);
        assert.equal(containerOf(current, 'main').knownStatus, ContainerStatus.CONTAINER_STATUS_RUNNING);
        await stop(id);
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
      });
    });

    it('kills a container that ignores SIGTERM once its stop timeout has passed', async () => {
      const id = taskId('sigterm');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(
          task(id, [
            container('stubborn', env.image, {
              ...creds(),
              command: ['sh', '-c', "trap '' TERM; while true; do sleep 1; done"],
              stopTimeout: { seconds: 2, nanos: 0 },
            }),
          ]),
        );
        await watch.waitForEvent('task RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING));
        const stopRequested = Date.now();
        await stop(id);
        const stopped = await watch.waitForEvent('stubborn STOPPED', is.container(id, 'stubborn', ContainerStatus.CONTAINER_STATUS_STOPPED));
        assert.ok(stopped.change?.$case === 'container');
        assert.equal(stopped.change.value.container?.exitCode, 137, 'killed by SIGKILL');
        assert.ok(Date.now() - stopRequested >= 1900, 'SIGKILL came before the stop timeout');
      });
    });

    it('pulls with the right registry credentials and reports wrong ones as the reason', async () => {
      const id = taskId('badcreds');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(task(id, [container('app', env.privateImage, { registryCredentials: { username: env.credentials.username, password: 'wrong-password' } })]));
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
        const final = await get(id);
        const app = containerOf(final, 'app');
        assert.equal(app.knownStatus, ContainerStatus.CONTAINER_STATUS_STOPPED);
        assert.match(app.reason, /refused the credentials/);
        assert.match(final?.reason ?? '', /essential container "app" stopped: cannot pull image .*refused the credentials/);
        assert.equal(app.runtimeId, '', 'no container was created');
      });
    });

    it('ends a task whose image does not exist with a reason that says so', async () => {
      const id = taskId('missing');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(task(id, [container('app', env.missingImage, creds())]));
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
        const app = containerOf(await get(id), 'app');
        assert.match(app.reason, /no such image/);
      });
    });

    it('says so when a container is killed for exceeding its memory limit', async () => {
      const id = taskId('oom');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(task(id, [container('hog', env.image, { ...creds(), memoryMib: 16, command: ['sh', '-c', 'x=$(head -c 200000000 /dev/zero | tr "\\000" a)'] })]));
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
        const final = await get(id);
        const hog = containerOf(final, 'hog');
        assert.equal(hog.exitCode, 137);
        assert.match(hog.reason, /exceeding its memory limit/);
      });
    });

    it(`maps ports in bridge mode and reports the dynamic host port (${kind === 'docker' ? "Docker's own bridge" : 'through CNI: containerd has no bridge'})`, async () => {
      const id = taskId('ports');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(
          task(
            id,
            [
              container('web', env.image, {
                ...creds(),
                command: ['httpd', '-f', '-p', '8080', '-h', '/www'],
                portMappings: [{ containerPort: 8080, hostPort: 0, protocol: 0, hostIp: '127.0.0.1', containerPortRange: '' }],
              }),
            ],
            { networkMode: NetworkMode.NETWORK_MODE_BRIDGE },
          ),
        );
        await watch.waitForEvent('task RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING));
        const running = await get(id);
        // On containerd the task's namespace and address come from the CNI network.
        assert.equal(running?.network !== undefined, kind === 'containerd');
        const web = containerOf(running, 'web');
        assert.equal(web.portBindings.length, 1);
        const binding = web.portBindings[0]!;
        assert.equal(binding.containerPort, 8080);
        assert.ok(binding.hostPort > 0);
        assert.equal(await textOnceServed(`http://127.0.0.1:${binding.hostPort}/index.html`), 'hello from berth\n');
        await stop(id);
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
      });
    });

    it('runs a command in a running container over the API: exit code and output; clear errors otherwise', async () => {
      const id = taskId('exec');
      const exec = (containerName: string, command: string[], timeoutSeconds?: number) => agent.calls.exec(id, containerName, command, timeoutSeconds);
      const codeOf = (promise: Promise<unknown>) =>
        promise.then(
          () => 0,
          (error: { code: number }) => error.code,
        );
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(
          task(id, [
            container('app', env.image, { ...creds(), command: ['sleep', '300'], environment: { GREETING: 'hello' } }),
            container('done', env.image, { ...creds(), command: ['true'], essential: false }),
          ]),
        );
        await watch.waitForEvent('app RUNNING', is.container(id, 'app', ContainerStatus.CONTAINER_STATUS_RUNNING));
        await watch.waitForEvent('done STOPPED', is.container(id, 'done', ContainerStatus.CONTAINER_STATUS_STOPPED));
      });
      const result = await exec('app', ['sh', '-c', 'echo "$GREETING from exec"; echo oops >&2; exit 3']);
      assert.equal(result.exitCode, 3);
      const output = Buffer.from(result.output).toString('utf8');
      assert.match(output, /hello from exec/);
      assert.match(output, /oops/);
      assert.equal((await exec('app', ['true'])).exitCode, 0);
      assert.equal(await codeOf(exec('nope', ['true'])), 5); // NOT_FOUND
      assert.equal(await codeOf(exec('done', ['true'])), 9); // FAILED_PRECONDITION: not running
      assert.equal(await codeOf(exec('app', [])), 3); // INVALID_ARGUMENT
      assert.equal(await codeOf(exec('app', ['sleep', '30'], 1)), 4); // DEADLINE_EXCEEDED
      // Without a timeout, the default one (30 s) ends it.
      const started = Date.now();
      assert.equal(await codeOf(exec('app', ['sleep', '120'])), 4);
      assert.ok(Date.now() - started >= 29_000, `ended after ${Date.now() - started} ms, before the default timeout`);
      await stop(id);
    });

    it("streams a container's output over the API: stdout and stderr apart, tail, since, follow with new lines; clear errors otherwise", async () => {
      const id = taskId('logs');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(
          task(id, [
            container('app', env.image, { ...creds(), command: ['sh', '-c', 'echo hello; echo oops >&2; echo world; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo later; exec sleep 300'] }),
            container('short', env.image, { ...creds(), command: ['echo', 'bye'], essential: false }),
          ]),
        );
        await watch.waitForEvent('app RUNNING', is.container(id, 'app', ContainerStatus.CONTAINER_STATUS_RUNNING));
        await watch.waitForEvent('short STOPPED', is.container(id, 'short', ContainerStatus.CONTAINER_STATUS_STOPPED));
      });
      const text = (line: LogLine) => `${line.stream === LogStream.LOG_STREAM_STDERR ? 'err' : 'out'}:${Buffer.from(line.text).toString('utf8')}`;
      const logs = (request: Partial<LogsRequest>, onLine?: (line: LogLine, stream: ClientReadableStream<LogsResponse>) => Promise<void> | void) => {
        const stream = agent.client.logs({ taskId: id, containerName: 'app', follow: false, streams: [], ...request } as LogsRequest);
        return readStream(stream, async (message) => {
          for (const line of message.lines) await onLine?.(line, stream);
        }).then((messages) => messages.flatMap((m) => m.lines));
      };

      // Follow: the lines there are, then a line written after the call began.
      const followed: string[] = [];
      await logs({ follow: true }, async (line, stream) => {
        followed.push(text(line));
        if (text(line) === 'out:world') await agent.calls.exec(id, 'app', ['touch', '/tmp/go']);
        if (text(line) === 'out:later') stream.cancel();
      });
      assert.deepEqual(
        followed.filter((l) => l.startsWith('out:')),
        ['out:hello', 'out:world', 'out:later'],
      );
      assert.deepEqual(
        followed.filter((l) => l.startsWith('err:')),
        ['err:oops'],
      );

      const all = await logs({});
      assert.deepEqual(all.map(text).sort(), followed.sort());
      assert.ok(
        all.every((l) => l.time instanceof Date && !Number.isNaN(l.time.getTime())),
        'every line has its time',
      );
      assert.deepEqual((await logs({ streams: [LogStream.LOG_STREAM_STDERR] })).map(text), ['err:oops']);
      assert.deepEqual((await logs({ tail: 1 })).map(text), ['out:later']);
      assert.deepEqual(await logs({ since: new Date(Date.now() + 60_000) }), []);
      // A follow of a container that has exited ends by itself.
      assert.deepEqual((await logs({ containerName: 'short', follow: true })).map(text), ['out:bye']);

      const codeOf = (promise: Promise<unknown>) =>
        promise.then(
          () => 0,
          (error: { code: number }) => error.code,
        );
      assert.equal(await codeOf(logs({ containerName: 'nope' })), 5); // NOT_FOUND
      assert.equal(await codeOf(logs({ taskId: 'no-such-task' })), 5);
      await stop(id);
    });

    it("reports the resource use of a task's running containers, once or as a stream; FAILED_PRECONDITION when none runs", async () => {
      const id = taskId('stats');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(
          task(id, [
            container('app', env.image, { ...creds(), command: ['sleep', '300'], memoryMib: 64 }),
            container('worker', env.image, { ...creds(), command: ['sh', '-c', 'while :; do :; done'] }),
          ]),
        );
        await watch.waitForEvent('task RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING));
      });
      const stats = (request: Partial<StatsRequest>, onMessage?: (message: StatsResponse, stream: ClientReadableStream<StatsResponse>) => void) => {
        const stream = agent.client.stats({ taskId: id, containerName: '', stream: false, ...request } as StatsRequest);
        return readStream(stream, (message) => onMessage?.(message, stream));
      };
      let received = 0;
      const once = await stats({ interval: { seconds: 0, nanos: 300_000_000 } });
      assert.equal(once.length, 1, 'one message without stream');
      const byName = new Map(once[0]!.containers.map((c) => [c.containerName, c]));
      assert.deepEqual([...byName.keys()].sort(), ['app', 'worker']);
      assert.equal(byName.get('app')!.memoryLimitBytes, 64 * 1024 * 1024);
      assert.ok(byName.get('app')!.memoryUsageBytes > 0);
      assert.ok(byName.get('app')!.pids >= 1);
      // Relative, not a share of a CPU: on a loaded machine the busy loop gets what it gets.
      assert.ok(byName.get('worker')!.cpuPercent > 0, 'a busy loop uses CPU');
      assert.ok(byName.get('app')!.cpuPercent < byName.get('worker')!.cpuPercent, 'more than a sleeping process');

      const streamed = await stats({ containerName: 'app', stream: true, interval: { seconds: 0, nanos: 200_000_000 } }, (_message, stream) => {
        if (received++ === 1) stream.cancel();
      });
      assert.equal(streamed.length, 2);
      assert.deepEqual(
        streamed.map((m) => m.containers.map((c) => c.containerName)),
        [['app'], ['app']],
      );
      assert.ok(streamed[1]!.time!.getTime() > streamed[0]!.time!.getTime(), 'a new sample each time');
      assert.ok(streamed[1]!.containers[0]!.cpuUsageNanos >= streamed[0]!.containers[0]!.cpuUsageNanos);
      const codeOf = (promise: Promise<unknown>) =>
        promise.then(
          () => 0,
          (error: { code: number }) => error.code,
        );
      assert.equal(await codeOf(stats({ interval: { seconds: 0, nanos: 1_000_000 } })), 3); // INVALID_ARGUMENT: interval too short
      assert.equal(await codeOf(stats({ containerName: 'nope' })), 5);
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await stop(id);
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
      });
      assert.equal(await codeOf(stats({})), 9); // FAILED_PRECONDITION: nothing runs
    });

    it('runs a container as a user named in the image, resolved through its /etc/passwd', async () => {
      const id = taskId('user');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(task(id, [container('app', env.image, { ...creds(), user: 'nobody', command: ['sh', '-c', 'test "$(id -u):$(id -g)" = 65534:65534'] })]));
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
        assert.equal(containerOf(await get(id), 'app').exitCode, 0, 'uid and gid of "nobody"');
      });
    });

    it('is idempotent on the task id and refuses a different definition under a used id', async () => {
      const id = taskId('idem');
      const definition = task(id, [container('app', env.image, { ...creds(), command: ['sleep', '300'] })]);
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        const first = await run(definition);
        const second = await run(definition);
        assert.equal(first.created, true);
        assert.equal(second.created, false);
        await assert.rejects(run(task(id, [container('app', env.image, { ...creds(), command: ['sleep', '301'] })])), (error: { code: number; details: string }) => {
          assert.equal(error.code, 6); // ALREADY_EXISTS
          assert.match(error.details, /different definition/);
          return true;
        });
        await watch.waitForEvent('task RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING));
        // Asked of the daemon once the container exists: one, not one per RunTask.
        const containers = await containersSeenByDaemon(env, ['berth.task-id', id]);
        assert.equal(containers.length, 1, 'one container, not one per RunTask');
        assert.equal((await run(definition)).created, false, 'a RunTask of a running task changes nothing');
        assert.equal((await containersSeenByDaemon(env, ['berth.task-id', id])).length, 1);
        await stop(id);
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
      });
    });
  });
}
