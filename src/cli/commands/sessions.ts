import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { BerthError } from '../../client/errors.js';
import type { RemoteExecSession } from '../../client/sessions.js';
import { CliError, EXIT } from '../client.js';
import type { Command, CommandContext } from '../command.js';

/** Writes and waits while the terminal or pipe is behind, so a fast process does not fill berthctl's memory. */
async function writeOut(to: NodeJS.WritableStream, data: Buffer): Promise<void> {
  if (!to.write(data)) await once(to, 'drain');
}

/** Sends what the user types or pipes, in order, holding stdin while the stream is behind; its end closes the process's stdin. */
function forwardStdin(stdin: NodeJS.ReadStream, session: RemoteExecSession, failed: (error: unknown) => void): () => void {
  const onData = (chunk: Buffer) => {
    stdin.pause();
    session.write(chunk).then(
      () => stdin.resume(),
      (error: unknown) => failed(error),
    );
  };
  const onEnd = () => void session.closeStdin().catch(failed);
  stdin.on('data', onData);
  stdin.once('end', onEnd);
  stdin.resume();
  return () => {
    stdin.off('data', onData);
    stdin.off('end', onEnd);
    stdin.pause();
  };
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
  const terminal = request.tty ? ctx.stdin : undefined;
  if (terminal && !terminal.isTTY) throw new CliError('-t needs a terminal on standard input: use -i alone to pipe input', EXIT.usage);
  const size = () => ({ columns: ctx.stdout.columns || 80, rows: ctx.stdout.rows || 24 });
  const cancel = new AbortController();
  const session = await ctx.client.execSession({
    taskId: request.taskId,
    containerName: request.containerName,
    command: request.command,
    tty: request.tty,
    stdin: request.stdin,
    terminalSize: request.tty && ctx.stdout.isTTY ? size() : undefined,
    environment: request.environment,
    user: request.user,
    workingDirectory: request.workingDirectory,
    signal: cancel.signal,
  });
  let failure: unknown;
  const fail = (error: unknown) => {
    failure ??= error;
    session.cancel();
  };
  const stopStdin = request.stdin || request.tty ? forwardStdin(ctx.stdin, session, fail) : () => undefined;
  terminal?.setRawMode(true);
  const onResize = () => void session.resize(size()).catch(fail);
  if (request.tty) ctx.stdout.on('resize', onResize);
  let interrupts = 0;
  const onInterrupt = () => {
    interrupts++;
    if (interrupts === 1) void session.signal('SIGINT').catch(fail);
    else {
      failure ??= new CliError('interrupted', 130);
      session.cancel();
    }
  };
  if (!request.tty) process.on('SIGINT', onInterrupt);
  try {
    for await (const piece of session.output()) await writeOut(piece.stream === 'stderr' ? ctx.stderr : ctx.stdout, piece.data);
  } catch (error) {
    failure ??= error;
  } finally {
    process.off('SIGINT', onInterrupt);
    ctx.stdout.off('resize', onResize);
    terminal?.setRawMode(false);
    stopStdin();
  }
  if (failure) throw failure;
  if (session.exitCode === undefined) throw new CliError('the session ended without an exit code', EXIT.failed);
  return session.exitCode;
}

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
