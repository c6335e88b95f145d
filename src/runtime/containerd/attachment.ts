import { execFile } from 'node:child_process';
import { constants as fs, openSync } from 'node:fs';
import { lstat, rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { inputInto } from '../stream-input.js';
import type { ContainerAttachment, LogLine, LogOptions } from '../types.js';
import type { ContainerdClient } from './containerd-client.js';

/**
 * Makes the FIFO a container's stdin is given at task create (an interactive container with a
 * terminal): the shim reads it into the terminal and holds it open for writing too, so a writer
 * that comes and goes (an attached client) never ends it. Kept across restarts of the task.
 */
export async function ensureStdinFifo(path: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (info?.isFIFO()) return;
  if (info) await rm(path, { force: true });
  await promisify(execFile)('mkfifo', ['-m', '0600', path]);
}

/** What an attachment needs of the containerd runtime around it. */
export interface ContainerdAttachTarget {
  client: ContainerdClient;
  containerId: string;
  tty: boolean;
  /** The container's stdin FIFO, when it has one and the caller writes to it. */
  stdinFifo?: string;
  /** The container's log, from now on and followed until the process exits or the signal aborts. */
  follow(options: LogOptions): Promise<AsyncIterable<LogLine>>;
  /** Waits for the exit of the container's process, until the signal aborts (a detach). */
  waitExit(signal: AbortSignal): Promise<number>;
}

/**
 * Attaches to a container on containerd: its output is the log its writer keeps, followed from
 * the end (lines as they come, a line left without its newline after 250 ms); its input is the
 * stdin FIFO, written through a descriptor of the agent's own.
 */
export async function attachContainerdContainer(target: ContainerdAttachTarget): Promise<ContainerAttachment> {
  const { client: c, containerId } = target;
  const operation = `attach to container ${containerId}`;
  const detach = new AbortController();
  const lines = await target.follow({ follow: true, tail: 0, signal: detach.signal });
  // Cancelled at the detach: a client that comes and goes leaves no wait behind in containerd.
  const exited = target.waitExit(detach.signal);
  exited.catch(() => undefined);
  const output = new PassThrough();
  const errors = target.tty ? undefined : new PassThrough();
  void (async () => {
    try {
      for await (const line of lines) {
        const to = line.stream === 'stderr' && errors ? errors : output;
        const data = line.partial ? line.text : Buffer.concat([line.text, Buffer.from('\n')]);
        if (!to.write(data)) await new Promise((resolve) => to.once('drain', resolve));
      }
    } catch {
      // A detach, or a log that went away: the output ends.
    } finally {
      output.end();
      errors?.end();
    }
  })();
  let socket: Socket | undefined;
  if (target.stdinFifo) {
    // Read and write, so that opening never waits; the agent never reads it.
    socket = new Socket({ fd: openSync(target.stdinFifo, fs.O_RDWR | fs.O_NONBLOCK), readable: false, writable: true });
    socket.on('error', () => undefined);
  }
  const stdin = socket;
  // Ending it closes the agent's descriptor only: the shim's own keeps the terminal's input open.
  const input = stdin ? inputInto(stdin, operation, 'detached', () => void stdin.destroy()) : undefined;
  return {
    output,
    errors,
    input,
    exited,
    resize: async (size) => {
      await c.call(`resize the terminal of container ${containerId}`, c.tasks, c.tasks.resizePty, { containerId, execId: '', width: size.columns, height: size.rows });
    },
    close: async () => {
      detach.abort();
      stdin?.destroy();
    },
  };
}
