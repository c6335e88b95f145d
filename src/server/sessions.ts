import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import type { ContainerAccess } from '../engine/container-access.js';
import { signalByName, terminalSizeViolations } from '../engine/admission/session-validation.js';
import { DeadlineExceededError, InvalidArgumentError } from '../engine/errors.js';
import type { ExecSession } from '../engine/sessions/exec-session.js';
import type { ForwardedConnection } from '../engine/sessions/forwarded-connection.js';
import type { AttachRequest, AttachResponse, ExecSessionRequest, ExecSessionResponse, PortForwardRequest, PortForwardResponse } from '../gen/berth/agent/v1/session.js';
import { toServiceError } from './error-status.js';
import { writeMessage } from './streaming.js';

/** The most bytes one stdin or data frame may carry. */
export const MAX_FRAME_BYTES = 1024 * 1024;
/** How long a stream may take to send its first message (start). */
const START_TIMEOUT_MS = 30_000;

const invalid = (field: string, description: string) => new InvalidArgumentError([{ field, description }], 'invalid request');

type Duplex<Req, Res> = ServerDuplexStream<Req, Res>;

/**
 * What every session stream does around its own traffic: it waits (bounded) for the first message,
 * ends the session when the client goes, the agent shuts down or a frame is bad, and answers with
 * the right status. `run` gets the first message and a signal that aborts when the stream is done
 * for; it resolves when the session has ended normally.
 */
async function serveSession<Req, Res>(call: Duplex<Req, Res>, shutdown: AbortSignal, run: (first: Req, requests: AsyncIterator<Req>, ended: AbortSignal) => Promise<void>): Promise<void> {
  const ended = new AbortController();
  const end = () => ended.abort();
  call.on('cancelled', end);
  call.on('close', end);
  call.on('error', end);
  shutdown.addEventListener('abort', end, { once: true });
  // Not destroyed when the client's messages end (a half-close): the answers still go out.
  const requests = call.iterator({ destroyOnReturn: false }) as AsyncIterator<Req>;
  try {
    let timer: NodeJS.Timeout | undefined;
    const first = await Promise.race([
      requests.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DeadlineExceededError(`no first message (start) within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    if (first.done) throw invalid('start', 'the first message must be start');
    await run(first.value, requests, ended.signal);
    if (!call.cancelled && !call.destroyed) call.end();
  } catch (error) {
    if (call.cancelled || call.destroyed) return;
    if (shutdown.aborted) call.emit('error', { code: status.UNAVAILABLE, details: 'the agent is shutting down' });
    else call.emit('error', toServiceError(error));
  } finally {
    end();
    shutdown.removeEventListener('abort', end);
  }
}

/** A frame of bytes from the client, refused beyond MAX_FRAME_BYTES. */
function frame(data: Buffer, field: string): Buffer {
  if (data.length > MAX_FRAME_BYTES) throw invalid(field, `must carry at most ${MAX_FRAME_BYTES} bytes (got ${data.length})`);
  return data;
}

/** Waits until `signal` aborts: rejects then, so that a race with it ends the session. */
function untilAborted(signal: AbortSignal, reason: () => Error): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(reason());
    else signal.addEventListener('abort', () => reject(reason()), { once: true });
  });
}

/** Serves one ExecSession stream: start, then stdin/resize/signal/close-stdin one way and output, then the exit code, the other. */
export function serveExecSession(containers: ContainerAccess, call: Duplex<ExecSessionRequest, ExecSessionResponse>, shutdown: AbortSignal): Promise<void> {
  return serveSession(call, shutdown, async (first, requests, ended) => {
    if (first.kind?.$case !== 'start') throw invalid('start', 'the first message must be start');
    const start = first.kind.value;
    const session = await containers.openExecSession({
      taskId: start.taskId,
      containerName: start.containerName,
      command: start.command,
      tty: start.tty,
      terminalSize: start.terminalSize,
      env: start.environment,
      user: start.user,
      workingDir: start.workingDirectory,
      stdin: start.stdin,
    });
    try {
      await writeMessage(call, { kind: { $case: 'started', value: {} } }, ended);
      const inbound = pumpExecInput(session, requests);
      const outbound = (async () => {
        for await (const piece of session.output()) {
          if (ended.aborted) return;
          await writeMessage(call, { kind: piece.stream === 'stdout' ? { $case: 'stdout', value: piece.data } : { $case: 'stderr', value: piece.data } }, ended);
        }
        const exitCode = await session.exitCode;
        if (session.idleExpired) throw idleError();
        await writeMessage(call, { kind: { $case: 'exit', value: { exitCode } } }, ended);
      })();
      // The client's messages may end before the process does: only a bad frame ends the session early.
      inbound.catch(() => undefined);
      await Promise.race([outbound, inbound.then(() => outbound), untilAborted(ended, () => (session.idleExpired ? idleError() : new Error('the client went away')))]);
    } finally {
      await session.close();
    }

    function idleError() {
      return new DeadlineExceededError('nothing passed either way for the session idle timeout (engine.sessionIdleTimeout)');
    }
  });
}

/** Hands the client's messages to the session until they end; the end of them closes stdin. */
async function pumpExecInput(session: ExecSession, requests: AsyncIterator<ExecSessionRequest>): Promise<void> {
  for (;;) {
    const next = await requests.next();
    if (next.done) break;
    const kind = next.value.kind;
    switch (kind?.$case) {
      case 'stdin':
        if (!session.acceptsInput) throw invalid('stdin', 'the process has no standard input: start it with stdin or tty');
        await session.write(frame(kind.value, 'stdin'));
        break;
      case 'resize': {
        const violations = terminalSizeViolations(kind.value, 'resize');
        if (violations.length > 0) throw new InvalidArgumentError(violations, 'invalid request');
        await session.resize(kind.value);
        break;
      }
      case 'signal': {
        const signal = signalByName(kind.value.slice(0, 32));
        if (!signal) throw invalid('signal', `"${kind.value.slice(0, 32)}" is not a signal name`);
        await session.signal(signal);
        break;
      }
      case 'closeStdin':
        session.closeInput();
        break;
      default:
        throw invalid('start', 'start is the first message only');
    }
  }
  session.closeInput();
}

/** Serves one PortForward stream: start, then the connection's bytes both ways until both sides have closed. */
export function servePortForward(containers: ContainerAccess, call: Duplex<PortForwardRequest, PortForwardResponse>, shutdown: AbortSignal): Promise<void> {
  return serveSession(call, shutdown, async (first, requests, ended) => {
    if (first.kind?.$case !== 'start') throw invalid('start', 'the first message must be start');
    const { taskId, containerName, port } = first.kind.value;
    const connection = await containers.openPortForward(taskId, containerName, port);
    try {
      await writeMessage(call, { kind: { $case: 'connected', value: {} } }, ended);
      const inbound = pumpForwardInput(connection, requests);
      inbound.catch(() => undefined);
      const outbound = (async () => {
        for await (const data of connection.received()) {
          if (ended.aborted) return;
          await writeMessage(call, { kind: { $case: 'data', value: data } }, ended);
        }
        if (!ended.aborted) await writeMessage(call, { kind: { $case: 'closed', value: {} } }, ended);
        await connection.finished;
        if (connection.idleExpired) throw new DeadlineExceededError('nothing passed either way for the session idle timeout (engine.sessionIdleTimeout)');
      })();
      await Promise.race([outbound, inbound.then(() => outbound), untilAborted(ended, () => new Error('the client went away'))]);
    } finally {
      connection.close();
    }
  });
}

async function pumpForwardInput(connection: ForwardedConnection, requests: AsyncIterator<PortForwardRequest>): Promise<void> {
  for (;;) {
    const next = await requests.next();
    if (next.done) break;
    const kind = next.value.kind;
    if (kind?.$case === 'data') await connection.send(frame(kind.value, 'data'));
    else if (kind?.$case === 'closeWrite') connection.closeWrite();
    else throw invalid('start', 'start is the first message only');
  }
  connection.closeWrite();
}

/** Serves one Attach stream: start, then (the writer's) stdin and resizes one way, the container's output and its exit code the other. */
export function serveAttach(containers: ContainerAccess, call: Duplex<AttachRequest, AttachResponse>, shutdown: AbortSignal): Promise<void> {
  return serveSession(call, shutdown, async (first, requests, ended) => {
    if (first.kind?.$case !== 'start') throw invalid('start', 'the first message must be start');
    const { taskId, containerName, stdin } = first.kind.value;
    const attached = await containers.attach(taskId, containerName, stdin);
    try {
      await writeMessage(call, { kind: { $case: 'started', value: {} } }, ended);
      const inbound = (async () => {
        for (;;) {
          const next = await requests.next();
          if (next.done) return;
          const kind = next.value.kind;
          if (kind?.$case === 'stdin') {
            if (!attached.writes) throw invalid('stdin', 'attached without stdin: only the client that attached with it writes');
            await attached.write(frame(kind.value, 'stdin'));
          } else if (kind?.$case === 'resize') {
            if (!attached.writes) throw invalid('resize', 'attached without stdin: only the client that attached with it sizes the terminal');
            const violations = terminalSizeViolations(kind.value, 'resize');
            if (violations.length > 0) throw new InvalidArgumentError(violations, 'invalid request');
            await attached.resize(kind.value);
          } else throw invalid('start', 'start is the first message only');
        }
      })();
      inbound.catch(() => undefined);
      const outbound = (async () => {
        for await (const piece of attached.output()) {
          if (ended.aborted) return;
          await writeMessage(call, { kind: piece.stream === 'stdout' ? { $case: 'stdout', value: piece.data } : { $case: 'stderr', value: piece.data } }, ended);
        }
        if (attached.idleExpired) throw new DeadlineExceededError('nothing passed either way for the session idle timeout (engine.sessionIdleTimeout)');
        const exitCode = await attached.exitCode;
        await writeMessage(call, { kind: { $case: 'exit', value: { exitCode } } }, ended);
      })();
      // The end of the client's messages is not a detach: a reader may send nothing at all.
      await Promise.race([outbound, inbound.then(() => new Promise<never>(() => undefined)), untilAborted(ended, () => new Error('the client went away'))]);
    } finally {
      await attached.close();
    }
  });
}
