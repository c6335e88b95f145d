import { mkdtempSync, rmSync } from 'node:fs';
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
