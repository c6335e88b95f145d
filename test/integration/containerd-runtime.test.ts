import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerdRuntime } from '../../src/runtime/containerd/containerd-runtime.js';
import { startBearerProxy, type BearerProxy } from '../harness/bearer-proxy.js';
import { pushBusyboxImage } from '../harness/busybox-image.js';
import { startContainerdDaemon, type TestContainerdDaemon } from '../harness/containerd-daemon.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { runtimeContract } from '../harness/runtime-contract.js';

let dir: string;
let registry: TestRegistry;
let containerd: TestContainerdDaemon;
let runtime: ContainerdRuntime;
let bearer: BearerProxy;

runtimeContract(
  'containerd',
  async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-containerd-contract-'));
    registry = await startRegistry(join(dir, 'registry'));
    containerd = await startContainerdDaemon(join(dir, 'containerd'));
    runtime = new ContainerdRuntime({
      socketPath: containerd.socketPath,
      namespace: 'berth-test',
      callTimeoutMs: 30_000,
      pullTimeoutMs: 120_000,
      stateDir: join(dir, 'state'),
      insecureRegistries: [],
    });
    bearer = await startBearerProxy(registry);
    const multi = await pushBusyboxImage(registry, 'berth-test/multi', '1', { multiPlatform: true });
    return {
      runtime,
      bearerImage: multi.replace(registry.address, bearer.address),
      bearerTokensIssued: () => bearer.tokensIssued(),
      image: await pushBusyboxImage(registry, 'berth-test/busybox', '1'),
      privateImage: await pushBusyboxImage(registry, 'berth-test/private', '1'),
      hostilePasswdImage: await pushBusyboxImage(registry, 'berth-test/hostile-passwd', '1', { passwdLink: '/dev/zero' }),
      missingImage: `${registry.address}/berth-test/does-not-exist:1`,
      credentials: { username: registry.username, password: registry.password },
    };
  },
  async () => {
    runtime?.close();
    await bearer?.stop();
    await containerd?.stop();
    await registry?.stop();
    rmSync(dir, { recursive: true, force: true });
  },
);

describe('containerd: a task create cut short by a crash', () => {
  let staleDir: string;
  let staleRegistry: TestRegistry;
  let staleContainerd: TestContainerdDaemon;
  let staleRuntime: ContainerdRuntime;
  const namespace = `berth-stale-${process.pid}`;
  before(async () => {
    staleDir = mkdtempSync(join(tmpdir(), 'berth-containerd-stale-'));
    staleRegistry = await startRegistry(join(staleDir, 'registry'));
    staleContainerd = await startContainerdDaemon(join(staleDir, 'containerd'));
    staleRuntime = new ContainerdRuntime({
      socketPath: staleContainerd.socketPath,
      namespace,
      callTimeoutMs: 30_000,
      pullTimeoutMs: 120_000,
      stateDir: join(staleDir, 'state'),
      insecureRegistries: [],
    });
  });
  after(async () => {
    staleRuntime?.close();
    await staleContainerd?.stop();
    await staleRegistry?.stop();
    rmSync(staleDir, { recursive: true, force: true });
  });

  it('takes over runc state left without a containerd task: removes it and starts the container', async () => {
    const image = await pushBusyboxImage(staleRegistry, 'berth-test/busybox', '1');
    await staleRuntime.pullImage(image, { auth: { username: staleRegistry.username, password: staleRegistry.password } });
    const id = await staleRuntime.createContainer({
      name: 'stale-runc', image, command: ['sleep', '300'], env: {}, labels: {}, cpuShares: 0, memoryBytes: 0, memoryReservationBytes: 0, network: 'none', ports: [],
    });
    // What a `runc create` of the shim leaves when the agent's create call dies with it: runc's
    // state (and a waiting init process) under the container's id, no task in containerd.
    const bundle = join(staleDir, 'bundle');
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
    assert.match(readFileSync(`/proc/${info.pid}/cmdline`, 'utf8'), /^sleep\x00300\x00/, 'the container runs its own command, not the leftover');
    await staleRuntime.stopContainer(id, 1000);
    await staleRuntime.removeContainer(id);
  });
});
