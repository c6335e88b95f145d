import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { type DaemonProcess, haltDaemon, requireBinary, startDaemon, unmountUnder, waitUntil } from './processes.js';

export interface TestDockerDaemon {
  /** unix://… address of the daemon's private socket. */
  host: string;
  socketPath: string;
  /** The Linux bridge the daemon uses for bridge networking. */
  bridge: string;
  /** The network namespace dockerd runs in, when it was started with its iptables rules. */
  namespace?: DockerNamespace;
  /** Ends dockerd with `signal` (its containers may or may not survive) and waits for it to exit. */
  halt(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts dockerd again on the same data root and socket, after `halt`. */
  resume(): Promise<void>;
  /** The prestart hooks (program and arguments) of the OCI spec dockerd gave runc for a running container (its full id). */
  prestartHooksOf(id: string): string[][];
  stop(): Promise<void>;
}

/**
 * A network namespace of a test's own for a dockerd that manages iptables: dockerd's NAT and filter
 * rules live there and reach no other test. A veth pair joins it to the host.
 */
export interface DockerNamespace {
  name: string;
  /** The host's end of the veth pair: what containers reach the host at, through dockerd's masquerading. */
  hostAddress: string;
  /** The namespace's end: where the host reaches ports that dockerd publishes. */
  address: string;
  /** The /30 of the veth pair, for `--insecure-registry`. */
  subnet: string;
}

export interface DockerDaemonOptions {
  /**
   * Lets dockerd manage iptables as a production dockerd does (DNAT for published ports,
   * masquerading, its FORWARD chains), inside a network namespace of its own. Without it, dockerd
   * runs in the host's namespace with `--iptables=false`.
   */
  iptables?: boolean;
}

let bridgeCounter = 0;

/** Deletes a link or a namespace that can only be a leftover of an earlier run that was killed. */
function removeLeftover(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {
    // none: the usual case
  }
}

/**
 * Starts a dockerd with its own data root, exec root (and so its own containerd) and socket under
 * `dir`, on a private Linux bridge, without touching the host's iptables or any daemon already on
 * the machine.
 */
export async function startDockerDaemon(dir: string, options: DockerDaemonOptions = {}): Promise<TestDockerDaemon> {
  const dockerd = requireBinary('/usr/sbin/dockerd', 'docker.io');
  mkdirSync(dir, { recursive: true });
  const socketPath = join(dir, 'docker.sock');
  // A short, unique bridge name (Linux allows 15 characters) and a /24 picked from the pid.
  const index = (process.pid + bridgeCounter++) % 200;
  const bridge = `bt${process.pid % 100000}x${bridgeCounter}`;
  const namespace = options.iptables ? createNamespace(`berth-dockerd-${process.pid}-${bridgeCounter}`, index) : undefined;
  const inNamespace = namespace ? ['-n', namespace.name] : [];
  removeLeftover([...inNamespace, 'link', 'del', bridge]);
  execFileSync('ip', [...inNamespace, 'link', 'add', bridge, 'type', 'bridge']);
  execFileSync('ip', [...inNamespace, 'addr', 'add', `10.213.${index}.1/24`, 'dev', bridge]);
  execFileSync('ip', [...inNamespace, 'link', 'set', bridge, 'up']);
  let daemon: DaemonProcess | undefined;
  const launch = async (): Promise<DaemonProcess> => {
    const args = [
      '--data-root',
      join(dir, 'root'),
      '--exec-root',
      join(dir, 'exec'),
      '--pidfile',
      join(dir, 'docker.pid'),
      '-H',
      `unix://${socketPath}`,
      `--bridge=${bridge}`,
      ...(namespace ? ['--insecure-registry', namespace.subnet] : ['--iptables=false', '--ip-masq=false']),
    ];
    // nsenter joins only the network namespace: dockerd's mounts stay visible on the host.
    const started = namespace
      ? startDaemon('/usr/bin/nsenter', [`--net=/run/netns/${namespace.name}`, dockerd, ...args], join(dir, 'dockerd.log'))
      : startDaemon(dockerd, args, join(dir, 'dockerd.log'));
    try {
      const docker = new Docker({ socketPath });
      await waitUntil('dockerd', 60_000, async () => ((await docker.ping()) ? true : undefined), started);
    } catch (error) {
      await started.stop();
      const log = readFileSync(join(dir, 'dockerd.log'), 'utf8').split('\n').slice(-15).join('\n');
      throw new Error(`${error instanceof Error ? error.message : String(error)}; end of dockerd.log:\n${log}`);
    }
    return started;
  };
  const removeBridge = () => {
    removeLeftover([...inNamespace, 'link', 'del', bridge]);
    // The veth pair goes with the namespace.
    if (namespace) removeLeftover(['netns', 'del', namespace.name]);
  };
  try {
    daemon = await launch();
  } catch (error) {
    removeBridge();
    throw error;
  }
  let current = daemon;
  return {
    host: `unix://${socketPath}`,
    socketPath,
    bridge,
    namespace,
    prestartHooksOf(id) {
      const spec = JSON.parse(readFileSync(join(dir, 'exec', 'containerd', 'daemon', 'io.containerd.runtime.v2.task', 'moby', id, 'config.json'), 'utf8')) as {
        hooks?: { prestart?: { path: string; args?: string[] }[] };
      };
      return (spec.hooks?.prestart ?? []).map((h) => [h.path, ...(h.args ?? [])]);
    },
    async halt(signal) {
      await haltDaemon(current, signal);
      if (signal === 'SIGKILL') {
        // dockerd's containerd dies with it but may linger as a zombie that nothing reaps here,
        // and its pid file would make the next dockerd wait for it forever.
        rmSync(join(dir, 'exec', 'containerd', 'containerd.pid'), { force: true });
      }
    },
    async resume() {
      current = await launch();
    },
    async stop() {
      const docker = new Docker({ socketPath });
      try {
        const containers = await docker.listContainers({ all: true });
        await Promise.all(
          containers.map((c) =>
            docker
              .getContainer(c.Id)
              .remove({ force: true })
              .catch(() => undefined),
          ),
        );
      } catch {
        // the daemon is already down
      }
      await current.stop();
      removeBridge();
      unmountUnder(dir);
    },
  };
}

/** A network namespace joined to the host by a veth pair on 10.214.`index`.0/30. */
function createNamespace(name: string, index: number): DockerNamespace {
  const hostEnd = `vd${process.pid % 100000}x${bridgeCounter}`;
  removeLeftover(['netns', 'del', name]);
  removeLeftover(['link', 'del', hostEnd]);
  const namespace = { name, hostAddress: `10.214.${index}.1`, address: `10.214.${index}.2`, subnet: `10.214.${index}.0/30` };
  execFileSync('ip', ['netns', 'add', name]);
  try {
    execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    execFileSync('ip', ['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    execFileSync('ip', ['addr', 'add', `${namespace.hostAddress}/30`, 'dev', hostEnd]);
    execFileSync('ip', ['link', 'set', hostEnd, 'up']);
    execFileSync('ip', ['-n', name, 'addr', 'add', `${namespace.address}/30`, 'dev', 'eth0']);
    execFileSync('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
  } catch (error) {
    removeLeftover(['netns', 'del', name]);
    throw error;
  }
  return namespace;
}
