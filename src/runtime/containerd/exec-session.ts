import { execFile } from 'node:child_process';
import { closeSync, constants as fs, openSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { constants as os } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isRuntimeError, RuntimeError } from '../errors.js';
import { killProcessTree } from '../process-tree.js';
import { inputInto } from '../stream-input.js';
import type { NumericUser } from '../user-database.js';
import type { SessionProcess, SessionProcessOptions, TerminalSize } from '../types.js';
import type { ContainerdClient } from './containerd-client.js';
import { execIdOf, prepareExecDir } from './exec-dirs.js';
import { specJson } from './oci-spec.js';

const PROCESS_TYPE = 'types.containerd.io/opencontainers/runtime-spec/1/Process';
/** Output still arriving this long after the process exited (a child it left holds the stream) is not waited for. */
const OUTPUT_AFTER_EXIT_MS = 2000;

/** What a session needs of the containerd runtime around it. */
export interface ContainerdSessionTarget {
  client: ContainerdClient;
  containerId: string;
  /** The container's OCI process, the base of the new one (environment, capabilities, ...). */
  process: Record<string, unknown>;
  /** The host pid of the container's main process. */
  taskPid: number;
  /** A directory of its own for the session's FIFOs; made here and removed at the end. */
  dir: string;
  /** The user the process runs as, when one was asked for. */
  user?: NumericUser;
  /** Waits for the exec's exit, registered before it starts. */
  waitFor(execId: string): Promise<{ exitStatus: number }>;
}

/** Opens a FIFO to read from without waiting for a writer, and holds it open for writing too until `release`. */
function openReader(path: string): { socket: Socket; release: () => void } {
  const fd = openSync(path, fs.O_RDONLY | fs.O_NONBLOCK);
  // A reader of a FIFO nobody holds for writing reads end-of-file at once: this writer holds it
  // until the shim's own writer is certainly open (the process has exited).
  let holder: number | undefined = openSync(path, fs.O_WRONLY | fs.O_NONBLOCK);
  const socket = new Socket({ fd, readable: true, writable: false });
  return {
    socket,
    release: () => {
      if (holder === undefined) return;
      closeSync(holder);
      holder = undefined;
    },
  };
}

/**
 * An interactive exec on containerd: the process's stdin, stdout and (without a terminal) stderr
 * are FIFOs the shim opens and copies (through the pseudo-terminal it holds, with a terminal). The
 * agent writes stdin and reads the output; closing its stdin FIFO is the process's end-of-file.
 */
export async function openContainerdSession(target: ContainerdSessionTarget, command: string[], options: SessionProcessOptions): Promise<SessionProcess> {
  const { client: c, containerId } = target;
  const execId = execIdOf(target.dir);
  const operation = `exec in container ${containerId}`;
  const withStdin = options.stdin || options.tty;
  const paths = { stdin: join(target.dir, 'stdin'), stdout: join(target.dir, 'stdout'), stderr: join(target.dir, 'stderr') };
  await prepareExecDir(target.dir, containerId);
  const opened: { release: () => void; socket: Socket }[] = [];
  let input: Socket | undefined;
  const cleanUp = async () => {
    for (const o of opened) {
      o.release();
      o.socket.destroy();
    }
    input?.destroy();
    await rm(target.dir, { recursive: true, force: true });
  };
  let created = false;
  let deleted = false;
  const deleteProcess = async () => {
    if (!created || deleted) return;
    deleted = true;
    // Wait can answer a moment before the shim has marked the process stopped: a delete in that
    // moment is refused ("conflict"); it is tried again for at most a second.
    for (let attempt = 0; attempt < 20; attempt++) {
      const error = await c.call('delete exec process', c.tasks, c.tasks.deleteProcess, { containerId, execId }).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!isRuntimeError(error, 'conflict')) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  let pid = 0;
  const kill = async () => {
    if (pid) await killProcessTree(pid, target.taskPid);
    await c.call(operation, c.tasks, c.tasks.kill, { containerId, execId, signal: os.signals.SIGKILL, all: false }).catch(() => undefined);
  };
  let exited: Promise<number>;
  try {
    await promisify(execFile)('mkfifo', ['-m', '0600', ...(withStdin ? [paths.stdin] : []), paths.stdout, ...(options.tty ? [] : [paths.stderr])]);
    const output = openReader(paths.stdout);
    opened.push(output);
    const errors = options.tty ? undefined : openReader(paths.stderr);
    if (errors) opened.push(errors);
    // Held for reading and writing, so that opening never waits; the agent never reads it.
    if (withStdin) input = new Socket({ fd: openSync(paths.stdin, fs.O_RDWR), readable: false, writable: true });
    const base = target.process;
    const env = [...((base.env as string[] | undefined) ?? []), ...Object.entries(options.env ?? {}).map(([name, value]) => `${name}=${value}`)];
    const size = options.terminalSize ?? { columns: 80, rows: 24 };
    const process = {
      ...base,
      args: command,
      env,
      terminal: options.tty,
      ...(options.tty ? { consoleSize: { height: size.rows, width: size.columns } } : {}),
      ...(options.workingDir ? { cwd: options.workingDir } : {}),
      ...(target.user ? { user: { ...(base.user as object | undefined), uid: target.user.uid, gid: target.user.gid, additionalGids: [] } } : {}),
    };
    await c.call(operation, c.tasks, c.tasks.exec, {
      containerId,
      execId,
      stdin: withStdin ? paths.stdin : '',
      stdout: paths.stdout,
      stderr: options.tty ? '' : paths.stderr,
      terminal: options.tty,
      spec: { typeUrl: PROCESS_TYPE, value: Buffer.from(specJson(process)) },
    });
    created = true;
    const waited = target.waitFor(execId);
    ({ pid } = await c.call(operation, c.tasks, c.tasks.start, { containerId, execId }));
    exited = waited.then((r) => {
      for (const o of opened) o.release();
      return r.exitStatus;
    });
    exited.catch(() => undefined);
  } catch (error) {
    await kill();
    await deleteProcess().catch(() => undefined);
    await cleanUp();
    throw error;
  }

  const [output, errors] = opened.map((o) => o.socket) as [Socket, Socket | undefined];
  // A child the process left behind may hold the output open: the streams end a moment after the exit regardless.
  void exited.then(
    () => {
      const timer = setTimeout(() => {
        for (const o of opened) if (!o.socket.readableEnded) o.socket.push(null);
      }, OUTPUT_AFTER_EXIT_MS);
      timer.unref();
    },
    () => undefined,
  );
  const stdin = input;
  // The shim holds the FIFO open for writing too: its end-of-file comes from CloseIO, once what
  // was written has gone into the FIFO.
  const inputStream = stdin
    ? inputInto(stdin, operation, 'the process has ended', async () => {
        try {
          await c.call(`close the stdin of an exec in container ${containerId}`, c.tasks, c.tasks.closeIo, { containerId, execId, stdin: true });
        } catch (error) {
          if (!isRuntimeError(error, 'not-found')) throw error;
        } finally {
          stdin.destroy();
        }
      })
    : undefined;
  stdin?.on('error', () => undefined);

  let closed = false;
  return {
    output,
    errors,
    input: inputStream,
    exited,
    resize: async (size: TerminalSize) => {
      if (!options.tty) throw new RuntimeError('invalid', operation, 'the process has no terminal to resize');
      await c.call(`resize the terminal of an exec in container ${containerId}`, c.tasks, c.tasks.resizePty, { containerId, execId, width: size.columns, height: size.rows });
    },
    signal: async (signal) => {
      await c.call(`signal an exec in container ${containerId}`, c.tasks, c.tasks.kill, { containerId, execId, signal: os.signals[signal], all: false }).catch((error: unknown) => {
        if (!isRuntimeError(error, 'not-found')) throw error;
      });
    },
    close: async () => {
      if (closed) return;
      closed = true;
      const running = await Promise.race([
        exited.then(
          () => false,
          () => false,
        ),
        new Promise<boolean>((resolve) => setImmediate(() => resolve(true))),
      ]);
      if (running) await kill();
      await Promise.race([exited.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, OUTPUT_AFTER_EXIT_MS).unref())]);
      await deleteProcess().catch(() => undefined);
      await cleanUp();
    },
  };
}
