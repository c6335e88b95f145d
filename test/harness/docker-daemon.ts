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
  /** Ends dockerd with `signal` (its containers may or may not survive) and waits for it to exit. */
  halt(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts dockerd again on the same data root and socket, after `halt`. */
  resume(): Promise<void>;
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
  const launch = async (): Promise<DaemonProcess> => {
    const started = startDaemon(
      dockerd,
      [
        '--data-root',
        join(dir, 'root'),
        '--exec-root',
        join(dir, 'exec'),
        '--pidfile',
        join(dir, 'docker.pid'),
        '-H',
        `unix://${socketPath}`,
        `--bridge=${bridge}`,
        '--iptables=false',
        '--ip-masq=false',
      ],
      join(dir, 'dockerd.log'),
    );
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
    try {
      execFileSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
    } catch {
      // already gone
    }
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
