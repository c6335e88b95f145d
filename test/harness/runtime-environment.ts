import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContainerRuntime } from '../../src/runtime/container-runtime.js';
import { ContainerdRuntime } from '../../src/runtime/containerd/containerd-runtime.js';
import { DockerRuntime } from '../../src/runtime/docker/docker-runtime.js';
import { pushBusyboxImage } from './busybox-image.js';
import { CNI_PLUGIN_DIR, createTestNetwork, type TestNetwork } from './cni-network.js';
import { startContainerdDaemon, type TestContainerdDaemon } from './containerd-daemon.js';
import { startDockerDaemon, type TestDockerDaemon } from './docker-daemon.js';
import { startRegistry, type TestRegistry } from './registry.js';
import { removeTree } from './processes.js';
import { forwardTcp, type TcpForwarder } from './tcp-forwarder.js';

export const RUNTIME_KINDS = ['docker', 'containerd'] as const;
export type RuntimeKind = (typeof RUNTIME_KINDS)[number];

/**
 * A private container runtime (dockerd or containerd, each with its own state and socket) and an
 * authenticated registry with the test images: what the engine scenarios run against, once per
 * runtime.
 */
export interface RuntimeEnvironment {
  kind: RuntimeKind;
  dir: string;
  registry: TestRegistry;
  /** A busybox image whose default command is `sh`. */
  image: string;
  privateImage: string;
  missingImage: string;
  credentials: { username: string; password: string };
  /** The `runtime` section of an agent's config for this daemon. */
  runtimeConfig: Record<string, unknown>;
  /** A pause-like image (sleeps until SIGTERM) in a registry anyone may pull from; agents pull it when a task first needs it. */
  pauseImage: string;
  /** A CNI network of this environment's own (bridge, subnet and address store). */
  network: TestNetwork;
  /** The `network` section of an agent's config: the pause image and the test network. */
  networkConfig: { pauseImage: string; cni: Record<string, unknown> };
  /** An adapter on the same daemon, for asserting what exists there. */
  runtime: ContainerRuntime;
  /** The ids of the test agents started on this environment (see startTestAgent): their task namespaces are removed with it. */
  agentIds: Set<string>;
  /** The private dockerd (kind docker only), for tests that talk to it directly. */
  docker?: TestDockerDaemon;
  /** Ends the daemon with `signal` (an outage); `resume` starts it again on the same state. */
  halt(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export interface RuntimeEnvironmentOptions {
  /**
   * Kind docker only: dockerd manages iptables (see `DockerDaemonOptions.iptables`), in a network
   * namespace of its own; it reaches the registries through forwarders on the namespace's veth, and
   * the image references name those.
   */
  dockerIptables?: boolean;
}

export async function startRuntimeEnvironment(name: string, kind: RuntimeKind, options: RuntimeEnvironmentOptions = {}): Promise<RuntimeEnvironment> {
  const dir = mkdtempSync(join(tmpdir(), `berth-${name}-${kind}-`));
  const registry = await startRegistry(join(dir, 'registry'));
  // The pause image comes from a registry anyone may pull from, as a node's sandbox image does:
  // the agent pulls it the first time a task needs it.
  const publicRegistry = await startRegistry(join(dir, 'public-registry'), undefined, undefined, { anonymous: true });
  const forwarders: TcpForwarder[] = [];
  /** The address the daemon pulls from, for each registry. */
  const pullAddress = new Map<string, string>([registry, publicRegistry].map((r) => [r.address, r.address]));
  const asPulled = (reference: string) => {
    const slash = reference.indexOf('/');
    return `${pullAddress.get(reference.slice(0, slash)) ?? reference.slice(0, slash)}${reference.slice(slash)}`;
  };
  const agentIds = new Set<string>();
  let docker: TestDockerDaemon | undefined;
  let containerd: TestContainerdDaemon | undefined;
  /** The containerd namespace of the environment (the cgroups of its containers are under it). */
  let containerdNamespace: string | undefined;
  let runtime: ContainerRuntime & { close?(): void };
  let runtimeConfig: Record<string, unknown>;
  let network: TestNetwork | undefined;
  try {
    if (kind === 'docker') {
      docker = await startDockerDaemon(join(dir, 'docker'), { iptables: options.dockerIptables });
      const namespace = docker.namespace;
      if (namespace) {
        for (const r of [registry, publicRegistry]) {
          const forwarder = await forwardTcp(namespace.hostAddress, r.address);
          forwarders.push(forwarder);
          pullAddress.set(r.address, forwarder.address);
        }
      }
      runtimeConfig = { kind, docker: { host: docker.host, callTimeout: '30s' } };
      runtime = new DockerRuntime({ host: docker.host, callTimeoutMs: 30_000, pullTimeoutMs: 120_000, stateDir: join(dir, 'inspector') });
    } else {
      containerd = await startContainerdDaemon(join(dir, 'containerd'));
      const namespace = `berth-${process.pid}`;
      containerdNamespace = namespace;
      runtimeConfig = { kind, containerd: { socket: containerd.socketPath, namespace, callTimeout: '30s', insecureRegistries: [] } };
      runtime = new ContainerdRuntime({ socketPath: containerd.socketPath, namespace, callTimeoutMs: 30_000, pullTimeoutMs: 120_000, stateDir: join(dir, 'inspector'), insecureRegistries: [] });
    }
    const image = asPulled(await pushBusyboxImage(registry, 'berth-test/busybox', '1'));
    const privateImage = asPulled(await pushBusyboxImage(registry, 'berth-test/private', '1'));
    // A pause process: sleeps until SIGTERM (pid 1 ignores signals it has no handler for).
    const pauseImage = asPulled(
      await pushBusyboxImage(publicRegistry, 'berth-test/pause', '1', {
        entrypoint: ['sh', '-c', 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'],
        cmd: [],
      }),
    );
    network = createTestNetwork();
    return {
      kind,
      dir,
      registry,
      image,
      privateImage,
      missingImage: asPulled(`${registry.address}/berth-test/does-not-exist:1`),
      credentials: { username: registry.username, password: registry.password },
      runtimeConfig,
      runtime,
      agentIds,
      docker,
      pauseImage,
      network,
      networkConfig: { pauseImage, cni: { pluginDirs: [CNI_PLUGIN_DIR], config: network.config } },
      halt: (signal) => (docker ?? containerd)!.halt(signal),
      resume: () => (docker ?? containerd)!.resume(),
      async stop() {
        const leftovers = await runtime.listContainers({}).catch(() => []);
        await Promise.all(leftovers.map((c) => runtime.removeContainer(c.id).catch(() => undefined)));
        runtime.close?.();
        await docker?.stop();
        await containerd?.stop();
        for (const forwarder of forwarders) await forwarder.close();
        await registry.stop();
        await publicRegistry.stop();
        removeAgentNamespaces(agentIds);
        removeAgentCgroups(agentIds);
        // berth's containers on containerd are in /<namespace>/<id> (runc makes the namespace's cgroup).
        if (containerdNamespace) removeCgroups(containerdNamespace);
        network?.remove();
        removeTree(dir);
      },
    };
  } catch (error) {
    network?.remove();
    await docker?.stop();
    await containerd?.stop();
    for (const forwarder of forwarders) await forwarder.close();
    await registry.stop();
    await publicRegistry.stop();
    throw error;
  }
}

/**
 * Deletes the network namespaces (`berth-<agent id>-<task>`) of the given agents: a test that
 * failed before its task stopped leaves its namespace behind, as an agent that stops leaves its
 * tasks running.
 */
function removeAgentNamespaces(agentIds: Set<string>): void {
  if (agentIds.size === 0) return;
  const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => [...agentIds].some((id) => name.startsWith(`berth-${id}-`)));
  for (const name of names) spawnSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
}

/**
 * Removes the task cgroups (made for tasks with task-level cpu or memory) of the given agents:
 * an agent stopped before its tasks' cleanup leaves them behind, as it leaves their containers.
 */
function removeAgentCgroups(agentIds: Set<string>): void {
  for (const id of agentIds) removeCgroups(join('berth', id));
}

/** Removes the cgroup at `path` (and those under it, where they hold no process) in every hierarchy. */
function removeCgroups(path: string): void {
  const hierarchies = readdirSync('/sys/fs/cgroup', { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => join('/sys/fs/cgroup', e.name));
  for (const root of ['/sys/fs/cgroup', ...hierarchies]) removeCgroupTree(join(root, path));
}

/** Removes a cgroup and the ones under it, deepest first (a cgroup's files go with its directory). */
function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeCgroupTree(join(dir, entry.name));
  try {
    rmdirSync(dir);
  } catch {
    // Still holding a process: nothing a test may kill here.
  }
}
