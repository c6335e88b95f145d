import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { type DaemonProcess, requireBinary, startDaemon, waitUntil } from './processes.js';

export interface TestDockerDaemon {
  /** unix://… address of the daemon's private socket. */
  host: string;
  socketPath: string;
  /** The Linux bridge the daemon uses for bridge networking. */
  bridge: string;
  stop(): Promise<void>;
}

let bridgeCounter = 0;

/**
 * Starts a dockerd with its own data root, exec root (and so its own containerd) and socket under
 * `dir`, on a private Linux bridge, without touching iptables or any daemon already on the machine.
 */
export async function startDockerDaemon(dir: string): Promise<TestDockerDaemon> {
  const dockerd = requireBinary('/usr/sbin/dockerd', 'docker.io');
  mkdirSync(dir, { recursive: true });
  const socketPath = join(dir, 'docker.sock');
  // A short, unique bridge name (Linux allows 15 characters) and a /24 picked from the pid.
  const index = (process.pid + bridgeCounter++) % 200;
  const bridge = `bt${process.pid % 100000}x${bridgeCounter}`;
  // A bridge of the same name can only be a leftover of an earlier run that was killed.
  try {
    execFileSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
  } catch {
    // none: the usual case
  }
  execFileSync('ip', ['link', 'add', bridge, 'type', 'bridge']);
  execFileSync('ip', ['addr', 'add', `10.213.${index}.1/24`, 'dev', bridge]);
  execFileSync('ip', ['link', 'set', bridge, 'up']);
  let daemon: DaemonProcess | undefined;
  const removeBridge = () => {
    try {
      execFileSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  };
  try {
    daemon = startDaemon(
      dockerd,
      [
        '--data-root', join(dir, 'root'),
        '--exec-root', join(dir, 'exec'),
        '--pidfile', join(dir, 'docker.pid'),
        '-H', `unix://${socketPath}`,
        `--bridge=${bridge}`,
        '--iptables=false',
        '--ip-masq=false',
      ],
      join(dir, 'dockerd.log'),
    );
    const docker = new Docker({ socketPath });
    await waitUntil('dockerd', 30_000, async () => ((await docker.ping()) ? true : undefined), daemon);
  } catch (error) {
    await daemon?.stop();
    removeBridge();
    throw error;
  }
  const started = daemon;
  return {
    host: `unix://${socketPath}`,
    socketPath,
    bridge,
    async stop() {
      const docker = new Docker({ socketPath });
      try {
        const containers = await docker.listContainers({ all: true });
        await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
      } catch {
        // the daemon is already down
      }
      await started.stop();
      removeBridge();
    },
  };
}
