import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isRuntimeError } from '../../src/runtime/errors.js';
import { join } from 'node:path';
import { ContainerdClient } from '../../src/runtime/containerd/containerd-client.js';
import { TaskExit } from '../../src/gen/containerd/events/task.js';
import { Any } from '../../src/gen/google/protobuf/any.js';
import { ContainerdRuntime } from '../../src/runtime/containerd/containerd-runtime.js';
import { LEASE_OWNER_LABEL, leaseLabels } from '../../src/runtime/containerd/lease-owner.js';
import { startBearerProxy, type BearerProxy } from '../harness/bearer-proxy.js';
import { pushBusyboxImage, sharedLayerImages } from '../harness/busybox-image.js';
import { startRuntimeEnvironment, type RuntimeEnvironment } from '../harness/runtime-environment.js';
import type { ContainerRuntime } from '../../src/runtime/container-runtime.js';
import { runtimeContract } from '../harness/runtime-contract.js';
import { waitUntil } from '../harness/processes.js';

let env: RuntimeEnvironment;
let bearer: BearerProxy;

runtimeContract(
  'containerd',
  async () => {
    env = await startRuntimeEnvironment('containerd-contract', 'containerd');
    bearer = await startBearerProxy(env.registry);
    const multi = await pushBusyboxImage(env.registry, 'berth-test/multi', '1', { multiPlatform: true });
    return {
      runtime: env.runtime,
      bearerImage: multi.replace(env.registry.address, bearer.address),
      bearerTokensIssued: () => bearer.tokensIssued(),
      bearerBlobsFromStorage: () => bearer.blobsFromStorage(),
      image: env.image,
      privateImage: env.privateImage,
      hostilePasswdImage: await pushBusyboxImage(env.registry, 'berth-test/hostile-passwd', '1', { passwdLink: '/dev/zero' }),
      sharedLayerImages: await sharedLayerImages(env.registry),
      usr1StopImage: await pushBusyboxImage(env.registry, 'berth-test/usr1-stop', '1', { stopSignal: 'SIGUSR1' }),
      missingImage: env.missingImage,
      credentials: env.credentials,
    };
  },
  async () => {
    await bearer?.stop();
    await env?.stop();
  },
);

describe('containerd beyond the contract: what a crash leaves, what a hostile registry sends', () => {
  let stale: RuntimeEnvironment;
  let staleRuntime: ContainerRuntime;
  let namespace: string;
  let socketPath: string;
  before(async () => {
    stale = await startRuntimeEnvironment('containerd-stale', 'containerd');
    staleRuntime = stale.runtime;
    ({ namespace, socket: socketPath } = stale.runtimeConfig.containerd as { namespace: string; socket: string });
  });
  after(async () => {
    await stale?.stop();
  });

  /** A container of the image that sleeps, created (not started); its id. */
  async function createSleeper(name: string, labels: Record<string, string> = {}): Promise<string> {
    await staleRuntime.pullImage(stale.image, { auth: stale.credentials });
    return staleRuntime.createContainer({ name, image: stale.image, command: ['sleep', '300'], env: {}, labels, cpuShares: 0, memoryBytes: 0, memoryReservationBytes: 0, network: 'none', ports: [] });
  }

  /** A "registry" on loopback that answers every manifest request with `answer`. */
  async function hostileRegistry(answer: (request: IncomingMessage, response: ServerResponse) => void): Promise<{ address: string; close(): Promise<void> }> {
    const server = createServer((request, response) => {
      if (request.url === '/v2/' || request.url === '/v2') return void response.writeHead(200).end('{}');
      answer(request, response);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () => {
        server.closeAllConnections();
        return new Promise((resolve) => server.close(() => resolve()));
      },
    };
  }

  it('fails a pull whose manifest never ends with "too large", reading no more than the limit', async () => {
    let sent = 0;
    const registry = await hostileRegistry((request, response) => {
      // HEAD says nothing useful; GET streams without end.
      response.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      if (request.method === 'HEAD') return void response.end();
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (sent < 1024 * 1024 * 1024 && response.write(chunk)) sent += chunk.length;
      };
      response.on('drain', pump);
      pump();
    });
    try {
      await assert.rejects(staleRuntime.pullImage(`${registry.address}/endless/app:1`), (error: unknown) => isRuntimeError(error, 'invalid') && /too large/.test(error.detail));
      assert.ok(sent < 64 * 1024 * 1024, `the registry got to send ${sent} bytes`);
    } finally {
      await registry.close();
    }
  });

  it('fails a pull pinned to a digest when the registry answers with another manifest', async () => {
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'0'.repeat(64)}`, size: 2 },
        layers: [],
      }),
    );
    const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
    const registry = await hostileRegistry((request, response) => {
      response.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': digest, 'content-length': manifest.length });
      response.end(request.method === 'HEAD' ? undefined : manifest);
    });
    const pinned = `sha256:${'a'.repeat(64)}`;
    try {
      await assert.rejects(
        staleRuntime.pullImage(`${registry.address}/lying/app@${pinned}`),
        (error: unknown) => isRuntimeError(error, 'invalid') && error.detail.includes(`answered the pinned digest ${pinned} with manifest ${digest}`),
      );
    } finally {
      await registry.close();
    }
  });

  it('ends the leases of berth processes that are gone, so containerd collects what they protected; leaves live ones', async () => {
    const client = new ContainerdClient(socketPath, namespace, 30_000);
    const snapshotExists = (key: string) =>
      client.call('stat snapshot', client.snapshots, client.snapshots.stat, { snapshotter: 'overlayfs', key }).then(
        () => true,
        (error: unknown) => (isRuntimeError(error, 'not-found') ? false : Promise.reject(error)),
      );
    try {
      // As a pull killed mid-unpack leaves it: a lease of a process that is gone, an active snapshot under it.
      const owners = { dead: '4194999:12345', live: leaseLabels(3600_000)[LEASE_OWNER_LABEL]! };
      for (const [name, owner] of Object.entries(owners)) {
        await client.call('create lease', client.leases, client.leases.create, { id: `berth-pull-${name}`, labels: { ...leaseLabels(3600_000), [LEASE_OWNER_LABEL]: owner } });
        await client.call(
          'prepare snapshot',
          client.snapshots,
          client.snapshots.prepare,
          { snapshotter: 'overlayfs', key: `extract-${name}`, parent: '', labels: {} },
          { lease: `berth-pull-${name}` },
        );
      }
      const restarted = new ContainerdRuntime({
        socketPath,
        namespace,
        callTimeoutMs: 30_000,
        pullTimeoutMs: 120_000,
        stateDir: join(stale.dir, 'state-2'),
        insecureRegistries: [],
      });
      try {
        await restarted.ping();
      } finally {
        restarted.close();
      }
      const { leases } = await client.call('list leases', client.leases, client.leases.list, { filters: [] });
      const ids = leases.map((l) => l.id);
      assert.ok(!ids.includes('berth-pull-dead'), "the dead process's lease is ended");
      assert.ok(ids.includes('berth-pull-live'), "a live process's lease is kept");
      assert.equal(await snapshotExists('extract-dead'), false, 'what it protected is collected');
      assert.equal(await snapshotExists('extract-live'), true);
    } finally {
      await client.call('delete lease', client.leases, client.leases.delete, { id: 'berth-pull-live', sync: true }).catch(() => undefined);
      client.close();
    }
  });

  it("waits for an earlier create of the same task still in containerd's hands, and runs the task it made", async () => {
    const id = await createSleeper('earlier-create');
    // Two creates of one task at once, from two adapters (one of them as of an agent process that
    // died mid-create): the one that comes second finds the task's bundle taken.
    const other = new ContainerdRuntime({ socketPath, namespace, callTimeoutMs: 30_000, pullTimeoutMs: 120_000, stateDir: join(stale.dir, 'earlier-create'), insecureRegistries: [] });
    try {
      const [prepared, started] = await Promise.allSettled([other.prepareStart(id), staleRuntime.startContainer(id)]);
      assert.equal(prepared.status, 'fulfilled', String((prepared as PromiseRejectedResult).reason));
      assert.equal(started.status, 'fulfilled', String((started as PromiseRejectedResult).reason));
    } finally {
      other.close();
    }
    const info = await staleRuntime.inspectContainer(id);
    assert.equal(info.state, 'running');
    await staleRuntime.stopContainer(id, 1000);
    await staleRuntime.removeContainer(id);
  });

  it('lets a create that outlasts the call timeout go on: the retries wait for it, and the task is created once', async () => {
    const made = await createSleeper('slow-create');
    // runc runs the createRuntime hook inside `runc create`: this one makes the create take 6 s,
    // three times the adapter's call timeout, and counts the creates.
    const creates = join(stale.dir, 'slow-create.creates');
    const id = `${made}-hooked`;
    const client = new ContainerdClient(socketPath, namespace, 30_000);
    try {
      // A copy of the container with the hook, on the same snapshot, made before the first is
      // deleted: the snapshot is never without a container, so containerd's collector keeps it.
      const { container } = await client.call('get container', client.containers, client.containers.get, { id: made });
      const spec = JSON.parse(Buffer.from(container!.spec!.value).toString('utf8')) as { hooks?: Record<string, unknown[]> };
      spec.hooks = { createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', `echo create >> ${creates}; sleep 6`] }] };
      const hooked = { ...container!, id, snapshotKey: container!.snapshotKey || made, spec: { ...container!.spec!, value: Buffer.from(JSON.stringify(spec)) } };
      await client.call('create container', client.containers, client.containers.create, { container: hooked });
      await client.call('delete container', client.containers, client.containers.delete, { id: made });
    } finally {
      client.close();
    }
    const impatient = new ContainerdRuntime({ socketPath, namespace, callTimeoutMs: 2000, pullTimeoutMs: 120_000, stateDir: join(stale.dir, 'slow-create'), insecureRegistries: [] });
    try {
      // As the engine does: a start that times out is tried again.
      const failures: string[] = [];
      for (let attempt = 1; attempt <= 10; attempt++) {
        const error = await impatient.startContainer(id).then(
          () => undefined,
          (e: unknown) => e,
        );
        if (error === undefined) break;
        assert.ok(isRuntimeError(error, 'timeout'), `only timeouts while the create goes on, not: ${String(error)}`);
        failures.push(String(error));
      }
      assert.ok(failures.length > 0, 'the first start gave up at the call timeout');
      assert.equal((await impatient.inspectContainer(id)).state, 'running', `started after ${failures.length} timeouts`);
      assert.equal(readFileSync(creates, 'utf8'), 'create\n', 'runc created the container once');
      await impatient.stopContainer(id, 1000);
      await impatient.removeContainer(id);
    } finally {
      impatient.close();
    }
  });

  it('starts a task that an earlier start (retried after its deadline) is starting: both succeed, one process runs', async () => {
    const id = await createSleeper('earlier-start');
    await staleRuntime.prepareStart(id);
    const results = await Promise.allSettled([staleRuntime.startContainer(id), staleRuntime.startContainer(id)]);
    assert.deepEqual(
      results.map((r) => (r.status === 'fulfilled' ? 'started' : String(r.reason))),
      ['started', 'started'],
    );
    const info = await staleRuntime.inspectContainer(id);
    assert.equal(info.state, 'running');
    await staleRuntime.stopContainer(id, 1000);
    assert.equal((await staleRuntime.inspectContainer(id)).exitCode, 137, 'the one process ended by the stop');
    await staleRuntime.removeContainer(id);
  });

  it('reports no exit of a process the container no longer runs (one a cut-short create left, killed later)', async () => {
    const running = await createSleeper('earlier-process', { 'test.exits': 'earlier-process' });
    // Created, never started: as between a create cut short and its retry.
    const taskless = await createSleeper('earlier-process-taskless', { 'test.exits': 'earlier-process' });
    // The adapter that started the container has its pid on record; a second one, as after an
    // agent restart, has nothing on record and asks containerd.
    const restarted = new ContainerdRuntime({ socketPath, namespace, callTimeoutMs: 30_000, pullTimeoutMs: 120_000, stateDir: join(stale.dir, 'restarted'), insecureRegistries: [] });
    const watching = new AbortController();
    /** The exits one adapter reports until that of the running container; `started` once it saw the start. */
    const watch = (runtime: ContainerRuntime) => {
      let sawStart!: () => void;
      const started = new Promise<void>((resolve) => (sawStart = resolve));
      const exits = (async () => {
        const seen: string[] = [];
        for await (const event of await runtime.events({ 'test.exits': 'earlier-process' }, watching.signal)) {
          if (event.type === 'start' && event.containerId === running) sawStart();
          if (event.type !== 'exit') continue;
          seen.push(`${event.containerId} ${event.exitCode}`);
          if (event.containerId === running) break;
        }
        return seen;
      })();
      return { started, exits };
    };
    // The exit of another process of a container, published to containerd as a shim publishes it.
    const publishExit = (id: string, pid: number) => {
      const exit = TaskExit.encode({ containerId: id, id, pid, exitStatus: 99, exitedAt: new Date() }).finish();
      const envelope = Any.encode({ typeUrl: 'containerd.events.TaskExit', value: Buffer.from(exit) }).finish();
      execFileSync('containerd', ['--address', socketPath, 'publish', '--namespace', namespace, '--topic', '/tasks/exit'], { input: envelope });
    };
    try {
      const watchers = [watch(staleRuntime), watch(restarted)];
      await staleRuntime.startContainer(running);
      // Both streams are live once they have seen the start.
      await Promise.all(watchers.map((w) => w.started));
      const { pid } = await staleRuntime.inspectContainer(running);
      publishExit(running, pid! + 100_000);
      publishExit(taskless, 99_999);
      await staleRuntime.stopContainer(running, 1000);
      const reported = await Promise.all(watchers.map((w) => w.exits));
      assert.deepEqual(reported, [[`${running} 137`], [`${running} 137`]], 'each adapter reports the SIGKILL of the stop, and no exit of the other processes');
      assert.equal((await staleRuntime.inspectContainer(running)).exitCode, 137);
    } finally {
      watching.abort();
      restarted.close();
    }
    await staleRuntime.removeContainer(running);
    await staleRuntime.removeContainer(taskless);
  });

  it('takes over runc state left without a containerd task: removes it and starts the container', async () => {
    const id = await createSleeper('stale-runc');
    // What a `runc create` of the shim leaves when the agent's create call dies with it: runc's
    // state (and a waiting init process) under the container's id, no task in containerd.
    const bundle = join(stale.dir, 'bundle');
    mkdirSync(join(bundle, 'rootfs', 'bin'), { recursive: true });
    copyFileSync('/bin/busybox', join(bundle, 'rootfs', 'bin', 'busybox'));
    execFileSync('runc', ['spec'], { cwd: bundle });
    const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { process: { terminal: boolean; args: string[] } };
    config.process.terminal = false;
    config.process.args = ['/bin/busybox', 'sleep', '1000'];
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
    const runcRoot = join('/run/containerd/runc', namespace);
    execFileSync('runc', ['--root', runcRoot, 'create', '--bundle', bundle, id], { stdio: 'ignore' });
    assert.match(execFileSync('runc', ['--root', runcRoot, 'state', id], { encoding: 'utf8' }), /"status": "created"/);

    await staleRuntime.startContainer(id);
    const info = await staleRuntime.inspectContainer(id);
    assert.equal(info.state, 'running');
    // Read once the process has its command line: an init still in its execve shows an empty one,
    // and one that has not reached it yet (runc start returns first) still shows "runc init".
    const cmdline = await waitUntil('the command line of the container process', 10_000, async () => {
      const line = readFileSync(`/proc/${info.pid}/cmdline`, 'utf8');
      return line && !line.startsWith('runc\x00init') ? line : undefined;
    });
    assert.match(cmdline, /^sleep\x00300\x00/, 'the container runs its own command, not the leftover');
    await staleRuntime.stopContainer(id, 1000);
    await staleRuntime.removeContainer(id);
  });
});
