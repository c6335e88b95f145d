import { PassThrough } from 'node:stream';
import type { Duplex } from 'node:stream';
import { constants } from 'node:os';
import type Docker from 'dockerode';
import { RuntimeError } from '../errors.js';
import type { ContainerAttachment, SessionProcess, SessionProcessOptions, TerminalSize } from '../types.js';
import { toRuntimeError } from './docker-errors.js';
import { inputInto } from '../stream-input.js';

/** What a session needs of the runtime around it. */
export interface DockerSessionHost {
  /** Runs a Docker API call under the runtime's timeout, its errors mapped to RuntimeErrors. */
  call<T>(operation: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /** Kills the exec's process with everything it started, if it still runs. */
  killExec(containerId: string, exec: Docker.Exec): Promise<void>;
}

/**
 * An exec's state, with its pid once it runs: Docker answers the start before it has recorded the
 * process's pid, so a moment after a start an exec can be running with pid 0. It is asked again
 * (for at most 5 s) until it has one.
 */
export async function runningExec(call: DockerSessionHost['call'], exec: Docker.Exec): Promise<Docker.ExecInspectInfo> {
  const inspect = () => call(`inspect exec ${exec.id}`, (abortSignal) => exec.inspect({ abortSignal }));
  let info = await inspect();
  for (let attempt = 0; attempt < 50 && info.Running && !info.Pid; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    info = await inspect();
  }
  return info;
}

/** Header of a frame of Docker's multiplexed stream: stream (1 stdout, 2 stderr), 3 zero bytes, a big-endian length. */
const FRAME_HEADER = 8;

/**
 * Splits Docker's multiplexed output (no terminal) into stdout and stderr, holding the connection
 * while either reader is behind (so a slow client slows the process, not the agent's memory).
 */
function demultiplex(source: Duplex, stdout: PassThrough, stderr: PassThrough): void {
  let pending: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let blocked = false;
    while (pending.length >= FRAME_HEADER) {
      const length = pending.readUInt32BE(4);
      if (pending.length < FRAME_HEADER + length) break;
      const target = pending[0] === 2 ? stderr : stdout;
      if (!target.write(pending.subarray(FRAME_HEADER, FRAME_HEADER + length))) blocked = true;
      pending = pending.subarray(FRAME_HEADER + length);
    }
    if (blocked) {
      source.pause();
      let waiting = 0;
      const resume = () => {
        if (--waiting === 0) source.resume();
      };
      for (const target of [stdout, stderr]) {
        if (target.writableNeedDrain) {
          waiting++;
          target.once('drain', resume);
        }
      }
      if (waiting === 0) source.resume();
    }
  };
  source.on('data', onData);
  source.once('end', () => {
    stdout.end();
    stderr.end();
  });
}

/** A hijacked connection's output: one stream with a terminal, stdout and stderr apart without. */
function outputOf(connection: Duplex, tty: boolean): { output: PassThrough; errors?: PassThrough } {
  const output = new PassThrough();
  const errors = tty ? undefined : new PassThrough();
  if (errors) demultiplex(connection, output, errors);
  else connection.pipe(output);
  return { output, errors };
}

/**
 * An interactive exec on Docker: the exec is created with its streams attached and started on a
 * hijacked connection, which carries stdin one way and the output the other (multiplexed unless
 * there is a terminal). Ending stdin half-closes the connection, which Docker passes on as the
 * process's end-of-file.
 */
export async function openDockerSession(docker: Docker, host: DockerSessionHost, containerId: string, command: string[], options: SessionProcessOptions): Promise<SessionProcess> {
  const operation = `exec in container ${containerId}`;
  const attachStdin = options.stdin || options.tty;
  const exec = await host.call(operation, (abortSignal) =>
    docker.getContainer(containerId).exec({
      Cmd: command,
      Tty: options.tty,
      AttachStdin: attachStdin,
      AttachStdout: true,
      AttachStderr: true,
      Env: Object.entries(options.env ?? {}).map(([name, value]) => `${name}=${value}`),
      User: options.user ?? '',
      WorkingDir: options.workingDir ?? '',
      abortSignal,
    } as Docker.ExecCreateOptions),
  );
  let connection: Duplex;
  try {
    connection = (await host.call(operation, (abortSignal) => exec.start({ hijack: true, stdin: attachStdin, Tty: options.tty, abortSignal }) as Promise<Duplex>)) as Duplex;
  } catch (error) {
    await host.killExec(containerId, exec);
    throw error;
  }
  const resize = (size: TerminalSize) => host.call(`resize the terminal of an exec in container ${containerId}`, (abortSignal) => exec.resize({ h: size.rows, w: size.columns, abortSignal } as never));
  if (options.tty && options.terminalSize) {
    // Docker before API 1.42 takes no size at create or start: the first size follows the start.
    await resize(options.terminalSize).catch(() => undefined);
  }

  const { output, errors } = outputOf(connection, options.tty);
  // Ending it half-closes the connection: Docker passes that on as the process's end-of-file.
  const input = attachStdin ? inputInto(connection, operation, 'the process has ended', () => void connection.end()) : undefined;

  const ended = new Promise<void>((resolve) => {
    connection.once('close', () => resolve());
    connection.once('end', () => resolve());
    connection.once('error', () => resolve());
  });
  const exited = ended.then(async () => {
    const info = await host.call(`inspect an exec in container ${containerId}`, (abortSignal) => exec.inspect({ abortSignal }));
    if (info.Running) throw new RuntimeError('internal', operation, 'the connection to the process ended while it runs');
    return info.ExitCode ?? -1;
  });
  exited.catch(() => undefined);

  let closed = false;
  return {
    output,
    errors,
    input,
    exited,
    resize: async (size) => {
      if (!options.tty) throw new RuntimeError('invalid', operation, 'the process has no terminal to resize');
      await resize(size);
    },
    signal: async (signal) => {
      const info = await runningExec(host.call, exec);
      if (!info.Running || !info.Pid) return;
      try {
        // Docker has no API to signal an exec: its process is signalled on the host, where it runs.
        process.kill(info.Pid, constants.signals[signal]);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw toRuntimeError(operation, error);
      }
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await host.killExec(containerId, exec);
      connection.destroy();
      output.end();
      errors?.end();
    },
  };
}

/**
 * `docker attach` on a hijacked connection: the container's output from now on (multiplexed
 * unless it has a terminal) and, when asked, its stdin. Closing the connection detaches; the
 * container's stdin stays open (berth creates containers with StdinOnce false).
 */
export async function attachDockerContainer(docker: Docker, host: DockerSessionHost, containerId: string, tty: boolean, stdin: boolean): Promise<ContainerAttachment> {
  const operation = `attach to container ${containerId}`;
  const container = docker.getContainer(containerId);
  const connection = (await host.call(
    operation,
    (abortSignal) => container.attach({ stream: true, stdin, stdout: true, stderr: true, hijack: true, abortSignal } as never) as Promise<Duplex>,
  )) as Duplex;
  const { output, errors } = outputOf(connection, tty);
  // Ending it sends nothing: the container's stdin stays open for the next writer.
  const input = stdin ? inputInto(connection, operation, 'detached', () => undefined) : undefined;
  connection.on('error', () => undefined);
  const exited = new Promise<void>((resolve) => {
    connection.once('close', () => resolve());
    connection.once('end', () => resolve());
  }).then(async () => {
    const info = await host.call(`inspect container ${containerId}`, (abortSignal) => container.inspect({ abortSignal }));
    if (info.State.Running) throw new RuntimeError('conflict', operation, 'detached while the container runs');
    return info.State.ExitCode;
  });
  exited.catch(() => undefined);
  return {
    output,
    errors,
    input,
    exited,
    resize: async (size) => {
      await host.call(`resize the terminal of container ${containerId}`, (abortSignal) => container.resize({ h: size.rows, w: size.columns, abortSignal } as never) as unknown as Promise<unknown>);
    },
    close: async () => {
      connection.destroy();
      output.end();
      errors?.end();
    },
  };
}
