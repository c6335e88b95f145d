import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import { internalErrorCounts } from '../../src/internal-errors.js';
import { readStatusDetails } from '../../src/client/status-details.js';
import { LogsResponse } from '../../src/gen/berth/agent/v1/task_service.js';
import { EventCollector, readStream, startTestAgent, watching, type TestAgent } from '../harness/agent.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { fuzzAgent } from '../harness/api-fuzz.js';
import { waitUntil } from '../harness/processes.js';
import { pushBusyboxImage } from '../harness/busybox-image.js';
import { startRegistry } from '../harness/registry.js';
import { HealthCheckClient } from '../harness/grpc-clients.js';
import { container, is, NetworkMode, task, taskId, TaskStatus } from '../harness/task-builders.js';

const totalInternalErrors = () => [...internalErrorCounts().values()].reduce((a, b) => a + b, 0);

/** What sloppy and hostile clients send: refused with the field named, never taken down with. */
export function hostileInputScenarios(kind: RuntimeKind): void {
  describe(`hostile and sloppy input on a real ${kind}`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    let internalBefore = 0;
    before(async () => {
      env = await startRuntimeEnvironment('hostile', kind);
      // Credentials from the config: the fuzzed definitions carry none.
      agent = await startTestAgent(env, { images: { registryCredentials: { [env.registry.address]: env.credentials } } });
      internalBefore = totalInternalErrors();
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });
    const creds = () => ({ registryCredentials: env.credentials });
    const refused = async (request: Promise<unknown>, code: status): Promise<ServiceError> => {
      const error = await request.then(
        () => assert.fail('the request was accepted'),
        (e: ServiceError) => e,
      );
      assert.equal(error.code, code, error.details);
      return error;
    };

    it('refuses an image reference with an empty path component (host//repo) with the field named, and keeps serving', async () => {
      const reference = env.image.replace('/berth-test/', '//berth-test/');
      const error = await refused(agent.calls.run(task(taskId('slashes'), [container('app', reference, creds())])), status.INVALID_ARGUMENT);
      const fields = readStatusDetails(error.metadata).badRequest?.fieldViolations.map((v) => v.field);
      assert.deepEqual(fields, ['task.containers[0].image']);
      for (const bad of ['Not::A@@Valid/Reference', env.image.replace('berth-test', 'Berth-Test')]) {
        await refused(agent.calls.run(task(taskId('bad-ref'), [container('app', bad, creds())])), status.INVALID_ARGUMENT);
      }
      await agent.calls.info();
    });

    it('refuses a definition near the message limit on its counts, while other calls are answered', async () => {
      const mountPoints = Array.from({ length: 150_000 }, (_, i) => ({ hostPath: `/srv/${i}`, containerPath: `/m/${i}`, readOnly: false, sourceVolume: '' }));
      const big = agent.calls.run(task(taskId('big'), [container('app', env.image, { ...creds(), mountPoints })]));
      const info = agent.calls.info();
      const error = await refused(big, status.INVALID_ARGUMENT);
      assert.match(error.details, /mount_points: must have at most 100 mount points/);
      await info;
    });

    it('gives tasks whose ids and container names join alike two containers, witnessed by the daemon', async () => {
      const prefix = taskId('n');
      const first = `${prefix}-a`;
      const second = `${prefix}-a-b`;
      await watching(agent.client, { taskIds: [first, second] }, async (watch) => {
        await agent.calls.run(task(first, [container('b-c', env.image, { ...creds(), command: ['sleep', '300'] })]));
        await agent.calls.run(task(second, [container('c', env.image, { ...creds(), command: ['sleep', '300'] })]));
        await watch.waitForEvent('first RUNNING', is.task(first, TaskStatus.TASK_STATUS_RUNNING), 60_000);
        await watch.waitForEvent('second RUNNING', is.task(second, TaskStatus.TASK_STATUS_RUNNING), 60_000);
        for (const id of [first, second]) {
          const listed = await env.runtime.listContainers({ 'berth.task-id': id });
          assert.equal(listed.length, 1, `one container of ${id}`);
          assert.equal(listed[0]?.state, 'running');
        }
        for (const id of [first, second]) await agent.calls.stop(id, '');
        await watch.waitForEvent('first STOPPED', is.task(first, TaskStatus.TASK_STATUS_STOPPED), 60_000);
        await watch.waitForEvent('second STOPPED', is.task(second, TaskStatus.TASK_STATUS_STOPPED), 60_000);
      });
    });

    it('does not run a private image another task pulled for a task whose credentials the registry refuses', async () => {
      const good = taskId('pulled-ok');
      const wrong = taskId('wrong-creds');
      await watching(agent.client, { taskIds: [good, wrong] }, async (watch) => {
        await agent.calls.run(task(good, [container('app', env.privateImage, { ...creds(), command: ['sleep', '300'] })]));
        await watch.waitForEvent('good RUNNING', is.task(good, TaskStatus.TASK_STATUS_RUNNING), 60_000);
        const badCreds = { registryCredentials: { username: env.credentials.username, password: 'not-the-password' } };
        await agent.calls.run(task(wrong, [container('app', env.privateImage, { ...badCreds, command: ['sleep', '300'] })]));
        await watch.waitForEvent('wrong STOPPED', is.task(wrong, TaskStatus.TASK_STATUS_STOPPED), 60_000);
        assert.ok(!watch.events.some(is.task(wrong, TaskStatus.TASK_STATUS_RUNNING)), 'the task with wrong credentials never ran');
        const stopped = { task: await agent.calls.get(wrong) };
        assert.match(stopped.task?.containers[0]?.reason ?? '', /refused the credentials/);
        assert.equal(stopped.task?.containers[0]?.runtimeId, '', 'no container was created');
        await agent.calls.stop(good, '');
        await watch.waitForEvent('good STOPPED', is.task(good, TaskStatus.TASK_STATUS_STOPPED), 60_000);
      });
    });

    it('prefer-cached: runs a cached private image only for tasks whose credentials the registry accepts; with the registry down, says so', async () => {
      const vault = await startRegistry(join(env.dir, 'vault-registry'), 'vault', 'vault-Secret-1');
      let vaultUp = true;
      // Every use of the cached copy asks the registry (no remembered acceptance), so each task below is checked.
      const cached = await startTestAgent(env, { images: { pullBehavior: 'prefer-cached', accessCheckValidity: '0s' } });
      try {
        const image = await pushBusyboxImage(vault, 'berth-test/vault', '1');
        const outcome = async (name: string, registryCredentials?: { username: string; password: string }) => {
          const id = taskId(name);
          await watching(cached.client, { taskIds: [id] }, async (watch) => {
            await cached.calls.run(task(id, [container('app', image, { ...(registryCredentials ? { registryCredentials } : {}), command: ['sleep', '300'] })]));
            await watch.waitForEvent(`${name} RUNNING or STOPPED`, (e) => is.task(id, TaskStatus.TASK_STATUS_RUNNING)(e) || is.task(id, TaskStatus.TASK_STATUS_STOPPED)(e), 60_000);
          });
          const snapshot = await cached.calls.get(id);
          return { id, status: snapshot?.knownStatus, reason: snapshot?.containers[0]?.reason ?? '', runtimeId: snapshot?.containers[0]?.runtimeId ?? '' };
        };
        const right = { username: 'vault', password: 'vault-Secret-1' };
        const owner = await outcome('vault-owner', right);
        assert.equal(owner.status, TaskStatus.TASK_STATUS_RUNNING, owner.reason);

        for (const [name, credentials] of [
          ['vault-guess', { username: 'vault', password: 'guessed-1' }],
          ['vault-anonymous', undefined],
        ] as const) {
          const other = await outcome(name, credentials);
          assert.equal(other.status, TaskStatus.TASK_STATUS_STOPPED);
          assert.match(other.reason, /the registry does not let this task's credentials pull .*berth-test\/vault:1 .*its cached copy was pulled with other credentials and is not used/);
          assert.equal(other.runtimeId, '', 'no container was created');
        }

        await vault.stop();
        vaultUp = false;
        const offline = await outcome('vault-offline', right);
        assert.equal(offline.status, TaskStatus.TASK_STATUS_RUNNING, offline.reason);
        assert.match(offline.reason, /the registry could not be asked whether this task's credentials may pull the image .*; using the cached image/);
        for (const id of [owner.id, offline.id]) await cached.calls.stop(id, '');
      } finally {
        await cached.stop();
        if (vaultUp) await vault.stop();
      }
    });

    it('answers OUT_OF_RANGE for a watch from a sequence beyond the latest, and INVALID_ARGUMENT with details for a bad watch', async () => {
      const { latestSequence } = await agent.calls.info();
      const ahead = new EventCollector(agent.client, { fromSequence: latestSequence + 1000 });
      await ahead.waitForEnd();
      assert.equal(ahead.error?.code, status.OUT_OF_RANGE);
      assert.equal(readStatusDetails(ahead.error?.metadata).errorInfo?.reason, 'SEQUENCE_BEYOND_LATEST');
      const bad = new EventCollector(agent.client, { fromSequence: 5, includeSnapshot: true });
      await bad.waitForEnd();
      assert.equal(bad.error?.code, status.INVALID_ARGUMENT);
      assert.deepEqual(
        readStatusDetails(bad.error?.metadata).badRequest?.fieldViolations.map((v) => v.field),
        ['from_sequence'],
      );
    });

    it('answers INVALID_ARGUMENT, not INTERNAL, for a 64-bit integer no JavaScript number holds', async () => {
      // memory_mib (field 9 of ContainerDefinition, int64) = 2^62, hand-encoded: the client library
      // would refuse to encode it.
      const containerBytes = Buffer.concat([Buffer.from([0x0a, 0x03]), Buffer.from('app'), Buffer.from([0x48, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40])]);
      const taskBytes = Buffer.concat([Buffer.from([0x0a, 0x01]), Buffer.from('x'), Buffer.from([0x2a, containerBytes.length]), containerBytes]);
      const request = Buffer.concat([Buffer.from([0x0a, taskBytes.length]), taskBytes]);
      const error = await new Promise<ServiceError>((resolve) => {
        agent.client.makeUnaryRequest(
          '/berth.agent.v1.TaskService/RunTask',
          (b: Buffer) => b,
          (b: Buffer) => b,
          request,
          (e) => resolve(e as ServiceError),
        );
      });
      assert.equal(error.code, status.INVALID_ARGUMENT, error.details);
    });

    it('answers random and mutated requests of every RPC with documented codes only, runs the valid ones, and loses or doubles no container', async () => {
      const { created, slowestInfoMs } = await fuzzAgent(agent.client, { image: env.image, idPrefix: taskId('fz'), runs: 150, networkModes: [NetworkMode.NETWORK_MODE_NONE] });
      assert.ok(created.length > 10, `only ${created.length} tasks were accepted`);
      // A stall check (no request may block the agent), not a latency goal: two lanes of tests
      // share the machine's 2 cores, and a call can wait seconds for the CPU.
      assert.ok(slowestInfoMs < 5000, `GetAgentInfo took ${Math.round(slowestInfoMs)} ms`);
      await watching(agent.client, { taskIds: created, fromSequence: 1 }, async (watch) => {
        for (const id of created) await agent.calls.stop(id, 'fuzz done');
        for (const id of created) await watch.waitForEvent(`${id} STOPPED`, is.task(id, TaskStatus.TASK_STATUS_STOPPED), 120_000);
      });
      for (const id of created) {
        const t = await agent.calls.get(id);
        const listed = await env.runtime.listContainers({ 'berth.task-id': id });
        for (const c of t?.containers ?? []) {
          const mine = listed.filter((l) => l.labels['berth.container-name'] === c.name);
          assert.ok(mine.length <= 1, `${id}/${c.name} exists ${mine.length} times`);
          if (c.runtimeId) assert.equal(mine[0]?.id, c.runtimeId, `${id}/${c.name} is the container the daemon has`);
        }
      }
    });

    it('answers Logs of a container that wrote 1.3 MB and a 40,000-byte line in responses under 1 MiB, lines split at 16 KiB', async () => {
      const id = taskId('chatty');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        const script = "head -c 40000 /dev/zero | tr '\\0' a; echo; seq 1 200000";
        await agent.calls.run(task(id, [container('app', env.image, { ...creds(), command: ['sh', '-c', script] })]));
        await watch.waitForEvent('STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED), 60_000);
      });
      // The runtime may report the exit before all of the output is in its log (Docker waits for
      // its log copier only so long): read until the last line is there.
      const responses = await waitUntil('the last line in the logs', 60_000, async () => {
        const read = await readStream(agent.client.logs({ taskId: id, containerName: 'app', follow: false, streams: [], tail: undefined, since: undefined }));
        const last = read.at(-1)?.lines.at(-1);
        return last && Buffer.from(last.text).toString() === '200000' ? read : undefined;
      });
      const sizes = responses.map((r) => LogsResponse.encode(r).finish().length);
      assert.ok(Math.max(...sizes) < 1024 * 1024, `a response of ${Math.max(...sizes)} bytes`);
      const lines = responses.flatMap((r) => r.lines);
      assert.deepEqual(
        lines.slice(0, 3).map((l) => [l.text.length, l.partial]),
        [
          [16384, true],
          [16384, true],
          [7232, false],
        ],
      );
      assert.equal(lines.length, 3 + 200_000);
      assert.equal(Buffer.from(lines.at(-1)!.text).toString(), '200000');
    });

    it('pages ListTasks and splits the WatchEvents snapshot so that no answer passes 4 MiB, with 5 MB of tasks', async () => {
      const prefix = taskId('big');
      const ids = Array.from({ length: 20 }, (_, i) => `${prefix}-${String(i).padStart(2, '0')}`);
      // 250 KB of environment each; the image is missing, so the tasks stop at once.
      const environment = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`V${i}`, 'x'.repeat(1000)]));
      await watching(agent.client, { taskIds: ids, fromSequence: 1 }, async (watch) => {
        for (const id of ids) await agent.calls.run(task(id, [container('app', env.missingImage, { ...creds(), environment })]));
        for (const id of ids) await watch.waitForEvent(`${id} STOPPED`, is.task(id, TaskStatus.TASK_STATUS_STOPPED), 60_000);
      });
      const seen: string[] = [];
      let pageToken = '';
      let pages = 0;
      do {
        const page = await agent.calls.listPage({ family: 'test', pageToken });
        seen.push(...page.tasks.map((t) => t.definition!.id));
        pageToken = page.nextPageToken;
        pages++;
      } while (pageToken && pages < 50);
      assert.ok(pages > 1, 'more than one page');
      for (const id of ids) assert.equal(seen.filter((s) => s === id).length, 1, `${id} listed once`);
      const snapshot = new EventCollector(agent.client, { includeSnapshot: true, taskIds: ids });
      try {
        await snapshot.waitFor('the last snapshot part', (m) => m.kind?.$case === 'snapshot' && !m.kind.value.more, 30_000);
        const parts = snapshot.messages.filter((m) => m.kind?.$case === 'snapshot');
        assert.ok(parts.length > 1, 'the snapshot came in parts');
        const inSnapshot = parts.flatMap((m) => (m.kind?.$case === 'snapshot' ? m.kind.value.tasks.map((t) => t.definition!.id) : []));
        assert.deepEqual([...inSnapshot].sort(), [...ids].sort());
      } finally {
        snapshot.close();
      }
      await refused(agent.calls.listPage({ pageToken: 'not-a-token' }), status.INVALID_ARGUMENT);
    });

    it('answers RunTask and GetTask with the definition as it was sent: unset fields stay unset, credentials left out', async () => {
      const id = taskId('as-sent');
      const sent = task(
        id,
        [
          container('app', env.image, {
            ...creds(),
            command: ['sleep', '300'],
            healthCheck: { command: ['true'], interval: undefined, timeout: { seconds: 2, nanos: 0 }, retries: 0, startPeriod: undefined },
          }),
          container('side', env.image, { ...creds(), command: ['sleep', '300'], essential: false, restartPolicy: { enabled: false, ignoredExitCodes: [], restartAttemptPeriod: undefined } }),
        ],
        { networkMode: NetworkMode.NETWORK_MODE_UNSPECIFIED },
      );
      const expected = { ...sent, containers: sent.containers.map((c) => ({ ...c, registryCredentials: undefined })) };
      const answered = await agent.calls.run(sent);
      assert.deepEqual(answered.task?.definition, expected);
      assert.deepEqual((await agent.calls.get(id))?.definition, expected);
      await agent.calls.stop(id, '');
    });

    it('keeps at most logs.maxFiles files of logs.maxFileBytes of a container that writes 2.7 MB', async () => {
      const small = await startTestAgent(env, { images: { registryCredentials: { [env.registry.address]: env.credentials } }, logs: { maxFileBytes: 65536, maxFiles: 2 } });
      try {
        const id = taskId('yes');
        await watching(small.client, { taskIds: [id] }, async (watch) => {
          await small.calls.run(task(id, [container('app', env.image, { command: ['seq', '1', '400000'] })]));
          await watch.waitForEvent('STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED), 60_000);
        });
        const read = async () =>
          (await readStream(small.client.logs({ taskId: id, containerName: 'app', follow: false, streams: [], tail: undefined, since: undefined }))).flatMap((r) =>
            r.lines.map((l) => Buffer.from(l.text).toString()),
          );
        // The log writer may still be writing what the process wrote just before it exited.
        let lines = await read();
        for (let i = 0; i < 100 && lines.at(-1) !== '400000'; i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          lines = await read();
        }
        const bytes = lines.reduce((sum, l) => sum + l.length + 1, 0);
        assert.equal(lines.at(-1), '400000', 'the newest lines are kept');
        assert.ok(bytes <= 2 * 65536, `${bytes} bytes of output kept`);
        assert.ok(lines.length > 1000, `only ${lines.length} lines kept`);
        // The lines kept are the last ones, in order.
        const first = Number(lines[0]);
        assert.deepEqual(
          lines.map(Number),
          Array.from({ length: lines.length }, (_, i) => first + i),
        );
      } finally {
        await small.stop();
      }
    });

    it('answers an Exec whose command writes 200 MB with its first 1 MiB, and keeps no more of it on disk than a bound', async () => {
      const id = taskId('exec-flood');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await agent.calls.run(task(id, [container('app', env.image, { ...creds(), command: ['sleep', '300'] })]));
        await watch.waitForEvent('RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING), 60_000);
      });
      // On containerd the output passes through a file of berth's (through the log writer): how large does it get?
      const execDir = join(agent.config.dataDir, 'containerd', 'exec');
      let largest = 0;
      const measure = setInterval(() => {
        for (const name of existsSync(execDir) ? readdirSync(execDir) : []) largest = Math.max(largest, statSync(join(execDir, name), { throwIfNoEntry: false })?.size ?? 0);
      }, 20);
      try {
        const script = "head -c 200000000 /dev/zero | tr '\\0' y; echo; echo end";
        const response = await agent.calls.exec(id, 'app', ['sh', '-c', script], 300);
        assert.equal(response.exitCode, 0);
        assert.equal(response.output.length, 1024 * 1024);
        assert.ok(
          Buffer.from(response.output).every((byte) => byte === 0x79),
          'the first bytes the command wrote',
        );
      } finally {
        clearInterval(measure);
      }
      if (kind === 'containerd') assert.ok(largest > 0 && largest <= 48 * 1024 * 1024 + 65536, `the exec's output file reached ${largest} bytes`);
      await agent.calls.stop(id, '');
    });

    it('survives a full disk: NOT_SERVING, UNAVAILABLE for work that needs a write, running tasks untouched, back by itself when space returns', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'berth-full-disk-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', dataDir]);
      let small: TestAgent | undefined;
      let health: HealthCheckClient | undefined;
      try {
        small = await startTestAgent(env, { dataDir, images: { registryCredentials: { [env.registry.address]: env.credentials } } });
        health = new HealthCheckClient(small.socketPath);
        const running = taskId('disk-a');
        const later = taskId('disk-b');
        // A definition of about 1 MB: more than the store's write-ahead log holds already.
        const environment = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`V${i}`, 'x'.repeat(1000)]));
        const big = task(
          later,
          ['a', 'b', 'c', 'd'].map((n) => container(n, env.image, { command: ['sleep', '300'], environment })),
        );
        await watching(small.client, { taskIds: [running, later], fromSequence: 1 }, async (watch) => {
          await small!.calls.run(task(running, [container('app', env.image, { command: ['sleep', '300'] })]));
          await watch.waitForEvent('RUNNING', is.task(running, TaskStatus.TASK_STATUS_RUNNING), 60_000);
          // Fill the file system.
          const fd = openSync(join(dataDir, 'filler'), 'w');
          try {
            const chunk = Buffer.alloc(256 * 1024);
            for (let i = 0; i < 1000; i++) writeSync(fd, chunk);
          } catch (error) {
            assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC');
          } finally {
            closeSync(fd);
          }
          const error = await refused(small!.calls.run(big), status.UNAVAILABLE);
          assert.match(error.details, /state store cannot be written/);
          await health!.waitFor('NOT_SERVING', '', 10_000);
          await refused(small!.calls.stop(running, ''), status.UNAVAILABLE);
          // What runs keeps running, and reads are answered.
          const [listed] = await env.runtime.listContainers({ 'berth.task-id': running });
          assert.equal(listed?.state, 'running');
          await small!.calls.get(running);
          rmSync(join(dataDir, 'filler'));
          await health!.waitFor('SERVING', '', 30_000);
          await small!.calls.run(big);
          await watch.waitForEvent('the later task RUNNING', is.task(later, TaskStatus.TASK_STATUS_RUNNING), 60_000);
          for (const id of [running, later]) await small!.calls.stop(id, '');
          for (const id of [running, later]) await watch.waitForEvent(`${id} STOPPED`, is.task(id, TaskStatus.TASK_STATUS_STOPPED), 60_000);
        });
      } finally {
        health?.close();
        await small?.stop();
        execFileSync('umount', ['-l', dataDir]);
        rmSync(dataDir, { recursive: true, force: true });
      }
    });

    it('counted no unexpected error', () => {
      assert.equal(totalInternalErrors(), internalBefore);
    });
  });
}
