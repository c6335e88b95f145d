import { once } from 'node:events';
import { status } from '@grpc/grpc-js';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { BerthError } from '../../client/errors.js';
import { CliError, EXIT } from '../client.js';
import type { Command, CommandContext } from '../command.js';

/** Writes and waits while the terminal or pipe is behind, so a fast process does not fill berthctl's memory. */
async function writeOut(to: NodeJS.WritableStream, data: Buffer): Promise<void> {
  if (!to.write(data)) await once(to, 'drain');
}

/** What exec and attach hold of the agent's side: the remote streams of a process or a container. */
interface RemoteStreams {
  output(): AsyncGenerator<{ stream: 'stdout' | 'stderr'; data: Buffer }>;
  readonly exitCode: number | undefined;
  write(data: Buffer): Promise<void>;
  resize(size: { columns: number; rows: number }): Promise<void>;
  cancel(): void;
}

/** Ctrl-P then Ctrl-Q: detaches an attached terminal (as with docker attach). */
const DETACH_KEYS = [0x10, 0x11];

interface Pumping {
  /** The local terminal goes raw, and its size follows the local one. */
  tty: boolean;
  /** What the user types or pipes goes to the remote side. */
  stdin: boolean;
  /** The local stdin ended (a pipe, or Ctrl-D on a terminal not in raw mode). */
  onStdinEnd(): Promise<void>;
  /** Ctrl-C without a terminal, counted. */
  onInterrupt(count: number): void;
  /** Ctrl-P Ctrl-Q on a raw terminal ends the session quietly. */
  detachKeys: boolean;
}

/**
 * Carries a session between berthctl's own streams and the remote ones until the remote side
 * ends: output to stdout and stderr (waiting while they are behind), typed or piped input in
 * order (holding stdin while the stream is behind), raw mode and resizes on a terminal.
 * Resolves to the remote exit code, or to "detached".
 */
async function pumpSession(ctx: CommandContext, remote: RemoteStreams, how: Pumping): Promise<number | 'detached'> {
  const terminal = how.tty ? ctx.stdin : undefined;
  const size = () => ({ columns: ctx.stdout.columns || 80, rows: ctx.stdout.rows || 24 });
  let failure: unknown;
  let detached = false;
  const fail = (error: unknown) => {
    failure ??= error;
    remote.cancel();
  };
  let ctrlP = false;
  const onData = (chunk: Buffer) => {
    if (how.detachKeys && terminal) {
      for (const byte of chunk) {
        if (ctrlP && byte === DETACH_KEYS[1]) {
          detached = true;
          remote.cancel();
          return;
        }
        ctrlP = byte === DETACH_KEYS[0];
      }
    }
    ctx.stdin.pause();
    remote.write(chunk).then(() => ctx.stdin.resume(), fail);
  };
  const onEnd = () => void how.onStdinEnd().catch(fail);
  if (how.stdin) {
    ctx.stdin.on('data', onData);
    ctx.stdin.once('end', onEnd);
    ctx.stdin.resume();
  }
  terminal?.setRawMode(true);
  const onResize = () => void remote.resize(size()).catch(fail);
  if (how.tty) {
    ctx.stdout.on('resize', onResize);
    if (ctx.stdout.isTTY) onResize();
  }
  let interrupts = 0;
  const onInterrupt = () => how.onInterrupt(++interrupts);
  if (!how.tty) process.on('SIGINT', onInterrupt);
  try {
    for await (const piece of remote.output()) await writeOut(piece.stream === 'stderr' ? ctx.stderr : ctx.stdout, piece.data);
  } catch (error) {
    if (!detached) failure ??= error;
  } finally {
    process.off('SIGINT', onInterrupt);
    ctx.stdout.off('resize', onResize);
    terminal?.setRawMode(false);
    ctx.stdin.off('data', onData);
    ctx.stdin.off('end', onEnd);
    ctx.stdin.pause();
  }
  if (detached) return 'detached';
  if (failure) throw failure;
  if (remote.exitCode === undefined) throw new CliError('the session ended without an exit code', EXIT.failed);
  return remote.exitCode;
}

export interface InteractiveExec {
  taskId: string;
  containerName: string;
  command: string[];
  tty: boolean;
  stdin: boolean;
  environment: Record<string, string>;
  user?: string;
  workingDirectory?: string;
}

/**
 * `exec -i` / `exec -it`: the process's streams on an ExecSession. With a terminal, the local one
 * is put in raw mode (every key, Ctrl-C and Ctrl-D included, goes to the remote terminal, which
 * acts on it) and its size follows the local one. Without, Ctrl-C sends SIGINT to the process and
 * a second Ctrl-C ends the session. Resolves to the process's exit code.
 */
export async function runInteractiveExec(ctx: CommandContext, request: InteractiveExec): Promise<number> {
  if (request.tty && !ctx.stdin.isTTY) throw new CliError('-t needs a terminal on standard input: use -i alone to pipe input', EXIT.usage);
  const session = await ctx.client.execSession({
    taskId: request.taskId,
    containerName: request.containerName,
    command: request.command,
    tty: request.tty,
    stdin: request.stdin,
    terminalSize: request.tty && ctx.stdout.isTTY ? { columns: ctx.stdout.columns || 80, rows: ctx.stdout.rows || 24 } : undefined,
    environment: request.environment,
    user: request.user,
    workingDirectory: request.workingDirectory,
  });
  let givenUp = false;
  const result = await pumpSession(ctx, session, {
    tty: request.tty,
    stdin: request.stdin || request.tty,
    onStdinEnd: () => session.closeStdin(),
    onInterrupt: (count) => {
      if (count === 1) void session.signal('SIGINT').catch(() => session.cancel());
      else {
        givenUp = true;
        session.cancel();
      }
    },
    detachKeys: false,
  }).catch((error: unknown) => {
    if (givenUp) throw new CliError('interrupted', 130);
    throw error;
  });
  return result === 'detached' ? EXIT.ok : result;
}

export const attachCommand: Command = {
  name: 'attach',
  summary: "attach to a running container's own input and output",
  usage: `berthctl attach TASK [CONTAINER] [--no-stdin]

      --no-stdin   only read: do not write to the container's input
Shows the container's output from now on and, for a container started with interactive, sends
what you type (or pipe) to its input; one client at a time writes. With pseudo_terminal and a
local terminal, the local one goes raw and its size follows yours; Ctrl-P Ctrl-Q detaches.
Without a terminal, Ctrl-C detaches. The container runs on after a detach; berthctl exits with
its exit code when it exits.
CONTAINER may be left out when the task has one container.`,
  options: { 'no-stdin': { type: 'boolean' } },
  async run(ctx, values, positionals) {
    const [taskId, name] = positionals;
    if (!taskId || positionals.length > 2) throw new CliError('usage: berthctl attach TASK [CONTAINER] [--no-stdin]', EXIT.usage);
    const task = await ctx.client.getTask(taskId);
    const containers = task.definition?.containers ?? [];
    const definition = name ? containers.find((c) => c.name === name) : containers.length === 1 ? containers[0] : undefined;
    if (!definition) {
      if (name) throw new CliError(`task ${taskId} has no container "${name}"`, EXIT.failed);
      throw new CliError(`task ${taskId} has ${containers.length} containers (${containers.map((c) => c.name).join(', ')}): name one, berthctl attach ${taskId} CONTAINER`, EXIT.usage);
    }
    const stdin = definition.interactive && !values['no-stdin'];
    const tty = stdin && definition.pseudoTerminal && ctx.stdin.isTTY === true;
    const attachment = await ctx.client.attach({ taskId, containerName: definition.name, stdin });
    const result = await pumpSession(ctx, attachment, {
      tty,
      stdin,
      // The container's input stays open: the end of ours sends nothing more.
      onStdinEnd: async () => undefined,
      onInterrupt: () => attachment.cancel(),
      detachKeys: true,
    }).catch((error: unknown) => {
      if (error instanceof BerthError && error.code === status.CANCELLED) return 'detached' as const;
      throw error;
    });
    if (result === 'detached') {
      ctx.stderr.write(`${tty ? '\r\n' : ''}berthctl: detached from ${taskId}/${definition.name}\n`);
      return EXIT.ok;
    }
    return result;
  },
};

/** "LOCAL:REMOTE", "REMOTE" (the same port locally) or ":REMOTE" (a free local port). */
export function parsePortPair(value: string): { local: number; remote: number } {
  const match = /^(?:(\d*):)?(\d+)$/.exec(value);
  const port = (s: string) => Number(s);
  const valid = (n: number, zero: boolean) => Number.isInteger(n) && n <= 65535 && (zero ? n >= 0 : n >= 1);
  if (!match) throw new CliError(`a port is LOCAL:REMOTE, REMOTE or :REMOTE (got "${value}")`, EXIT.usage);
  const remote = port(match[2]!);
  const local = match[1] === undefined ? remote : match[1] === '' ? 0 : port(match[1]);
  if (!valid(remote, false) || !valid(local, true)) throw new CliError(`ports are 1 to 65535 (got "${value}")`, EXIT.usage);
  return { local, remote };
}

/** Carries one local connection over a PortForward stream, both ways, half-closes included. */
async function forwardConnection(ctx: CommandContext, socket: Socket, target: { taskId: string; containerName?: string; port: number }): Promise<void> {
  socket.pause();
  const cancel = new AbortController();
  let forward;
  try {
    forward = await ctx.client.portForward({ ...target, signal: cancel.signal });
  } catch (error) {
    ctx.stderr.write(`berthctl: a connection to port ${target.port} failed: ${error instanceof Error ? error.message : String(error)}\n`);
    socket.destroy();
    return;
  }
  const remote = forward;
  socket.on('data', (chunk: Buffer) => {
    socket.pause();
    remote.send(chunk).then(
      () => socket.resume(),
      () => socket.destroy(),
    );
  });
  socket.once('end', () => remote.closeWrite());
  socket.once('close', () => remote.cancel());
  socket.on('error', () => remote.cancel());
  socket.resume();
  try {
    for await (const data of remote.received()) if (!socket.write(data)) await once(socket, 'drain');
    socket.end();
    await remote.finished();
  } catch (error) {
    if (!(error instanceof BerthError && socket.destroyed)) ctx.stderr.write(`berthctl: a forwarded connection failed: ${error instanceof Error ? error.message : String(error)}\n`);
    socket.destroy();
  }
}

export const portForwardCommand: Command = {
  name: 'port-forward',
  summary: "reach a port inside a task's network namespace from a local port",
  usage: `berthctl port-forward TASK [LOCAL:]REMOTE... [--address ADDR] [--container NAME]

      --address ADDR     the local address to listen on (default 127.0.0.1)
      --container NAME   the container whose network namespace is entered (default: the first that runs)
Listens on each LOCAL port (":REMOTE" picks a free one) until Ctrl-C; each connection to it is
carried to 127.0.0.1:REMOTE inside the task's network namespace, so the port need not be published.`,
  options: { address: { type: 'string' }, container: { type: 'string' } },
  async run(ctx, values, positionals) {
    const [taskId, ...pairs] = positionals;
    if (!taskId || pairs.length === 0) throw new CliError('usage: berthctl port-forward TASK [LOCAL:]REMOTE...', EXIT.usage);
    const ports = pairs.map(parsePortPair);
    const host = (values.address as string | undefined) ?? '127.0.0.1';
    const containerName = values.container as string | undefined;
    // Fails here, before listening, when the task is unknown.
    await ctx.client.getTask(taskId);
    const servers = await Promise.all(
      ports.map(async ({ local, remote }) => {
        const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => void forwardConnection(ctx, socket, { taskId, containerName, port: remote }));
        server.listen(local, host);
        await Promise.race([
          once(server, 'listening'),
          once(server, 'error').then(([error]) => Promise.reject(new CliError(`cannot listen on ${host}:${local}: ${(error as Error).message}`, EXIT.failed))),
        ]);
        ctx.stdout.write(`Forwarding from ${host}:${(server.address() as AddressInfo).port} -> ${remote}\n`);
        return server;
      }),
    );
    if (!ctx.signal.aborted) await once(ctx.signal, 'abort');
    for (const server of servers) server.close();
    return EXIT.ok;
  },
};
