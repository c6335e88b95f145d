import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { type DaemonProcess, haltDaemon, requireBinary, startDaemon, unmountUnder, waitUntil } from './processes.js';

export interface TestContainerdDaemon {
  socketPath: string;
  /** Ends containerd with `signal` and waits for it to exit; the tasks' shims live on. */
  halt(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts containerd again on the same root, state and socket, after `halt`. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a containerd with its own root, state and socket under `dir` (CRI disabled), without
 * touching any containerd already on the machine.
 */
export async function startContainerdDaemon(dir: string): Promise<TestContainerdDaemon> {
  const containerd = requireBinary('/usr/bin/containerd', 'containerd');
  mkdirSync(dir, { recursive: true });
  const socketPath = join(dir, 'containerd.sock');
  const configFile = join(dir, 'config.toml');
  writeFileSync(
    configFile,
    [
      'version = 2',
      `root = "${join(dir, 'root')}"`,
      `state = "${join(dir, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${socketPath}"`,
      '[ttrpc]',
      `  address = "${socketPath}.ttrpc"`,
      '',
    ].join('\n'),
  );
  const launch = async (): Promise<DaemonProcess> => {
    const daemon = startDaemon(containerd, ['--config', configFile], join(dir, 'containerd.log'));
    try {
      await waitUntil('containerd', 30_000, () => socketAnswers(socketPath), daemon);
    } catch (error) {
      await daemon.stop();
      throw error;
    }
    return daemon;
  };
  let current = await launch();
  return {
    socketPath,
    async halt(signal) {
      await haltDaemon(current, signal);
    },
    async resume() {
      current = await launch();
    },
    async stop() {
      await current.stop();
      unmountUnder(dir);
    },
  };
}

function socketAnswers(path: string): Promise<true | undefined> {
  return new Promise((resolve) => {
    const socket = connect(path, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(undefined));
  });
}
