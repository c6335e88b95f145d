import { once } from 'node:events';
import { Metadata, type ClientDuplexStream } from '@grpc/grpc-js';
import { AttachRequest, ExecSessionRequest, PortForwardRequest, type AttachResponse, type ExecSessionResponse, type PortForwardResponse, type TerminalSize } from '../gen/berth/agent/v1/session.js';
import type { TaskServiceClient } from '../gen/berth/agent/v1/task_service.js';
import { toBerthError } from './errors.js';

/** What to run for an interactive exec: ExecSessionStart's fields. */
export interface ExecSessionOptions {
  taskId: string;
  containerName: string;
  command: string[];
  /** A pseudo-terminal (`-t`): output comes as stdout only. */
  tty?: boolean;
  terminalSize?: TerminalSize;
  environment?: Record<string, string>;
  user?: string;
  workingDirectory?: string;
  /** Whether the process reads what `write` sends (`-i`); always with a terminal. */
  stdin?: boolean;
  /** Cancels the session: the agent ends the process. */
  signal?: AbortSignal;
}

/** Opens a duplex call, cancelled when `signal` aborts, and waits for its first answer (started or connected). */
async function openDuplex<Req, Res>(
  open: () => ClientDuplexStream<Req, Res>,
  start: Req,
  signal: AbortSignal | undefined,
): Promise<{ call: ClientDuplexStream<Req, Res>; answers: AsyncIterator<Res> }> {
  const call = open();
  const onAbort = () => call.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  call.once('close', () => signal?.removeEventListener('abort', onAbort));
  const answers = call[Symbol.asyncIterator]() as AsyncIterator<Res>;
  call.write(start);
  try {
    const first = await answers.next();
    if (first.done) throw new Error('the agent ended the session before it began');
  } catch (error) {
    call.cancel();
    throw toBerthError(error);
  }
  return { call, answers };
}

/** What ExecSession and Attach answer after `started`: output, then the exit code. */
type OutputAnswer = { kind?: { $case: 'started'; value: object } | { $case: 'stdout' | 'stderr'; value: Buffer } | { $case: 'exit'; value: { exitCode: number } } };

/** The output of an ExecSession or an Attach as it comes; `onExit` gets the exit code at the end. */
async function* outputOf(answers: AsyncIterator<OutputAnswer>, onExit: (code: number) => void): AsyncGenerator<{ stream: 'stdout' | 'stderr'; data: Buffer }> {
  try {
    for (;;) {
      const next = await answers.next();
      if (next.done) break;
      const kind = next.value.kind;
      if (kind?.$case === 'stdout' || kind?.$case === 'stderr') yield { stream: kind.$case, data: kind.value };
      else if (kind?.$case === 'exit') onExit(kind.value.exitCode);
    }
  } catch (error) {
    throw toBerthError(error);
  }
}

/** Writes one message, waiting while grpc-js holds too much unsent. */
async function send<Req>(call: ClientDuplexStream<Req, unknown>, message: Req): Promise<void> {
  if (!call.write(message)) await once(call, 'drain');
}

/**
 * A process running in a container whose standard streams this client holds (ExecSession). Read
 * `output()` to its end; `exitCode` resolves then.
 */
export class RemoteExecSession {
  private exit: number | undefined;

  private constructor(
    private readonly call: ClientDuplexStream<ExecSessionRequest, ExecSessionResponse>,
    private readonly answers: AsyncIterator<ExecSessionResponse>,
  ) {}

  /** Starts the process; resolves once it runs, fails with a BerthError saying why it cannot. */
  static async open(raw: TaskServiceClient, options: ExecSessionOptions): Promise<RemoteExecSession> {
    const { signal, taskId, containerName, command, ...rest } = options;
    const start = ExecSessionRequest.fromPartial({ kind: { $case: 'start', value: { taskId, containerName, command, ...rest } } });
    const { call, answers } = await openDuplex(() => raw.execSession(new Metadata()), start, signal);
    return new RemoteExecSession(call, answers);
  }

  /** What the process writes, as it comes, until it exits. */
  output(): AsyncGenerator<{ stream: 'stdout' | 'stderr'; data: Buffer }> {
    return outputOf(this.answers, (code) => (this.exit = code));
  }

  /** The exit code, once `output()` has been read to its end. */
  get exitCode(): number | undefined {
    return this.exit;
  }

  /** Sends bytes to the process's standard input; resolves when the stream takes more. */
  write(data: Buffer): Promise<void> {
    return send(this.call, { kind: { $case: 'stdin', value: data } });
  }

  /** The process reads end-of-file after what was written. */
  closeStdin(): Promise<void> {
    return send(this.call, { kind: { $case: 'closeStdin', value: {} } });
  }

  resize(size: TerminalSize): Promise<void> {
    return send(this.call, { kind: { $case: 'resize', value: size } });
  }

  /** Sends a signal by name ("SIGINT"). */
  signal(name: string): Promise<void> {
    return send(this.call, { kind: { $case: 'signal', value: name } });
  }

  /** Ends the session: the agent kills the process. */
  cancel(): void {
    this.call.cancel();
  }
}

/** One TCP connection to a port inside a task's network namespace (PortForward). */
export class RemoteForward {
  private constructor(
    private readonly call: ClientDuplexStream<PortForwardRequest, PortForwardResponse>,
    private readonly answers: AsyncIterator<PortForwardResponse>,
  ) {}

  /** Connects; fails with a BerthError (FAILED_PRECONDITION when nothing listens there). */
  static async open(raw: TaskServiceClient, options: { taskId: string; port: number; containerName?: string; signal?: AbortSignal }): Promise<RemoteForward> {
    const start = PortForwardRequest.fromPartial({ kind: { $case: 'start', value: { taskId: options.taskId, port: options.port, containerName: options.containerName ?? '' } } });
    const { call, answers } = await openDuplex(() => raw.portForward(new Metadata()), start, options.signal);
    return new RemoteForward(call, answers);
  }

  /** What the container's side sends, until it closes its side. */
  async *received(): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        const next = await this.answers.next();
        if (next.done) return;
        const kind = next.value.kind;
        if (kind?.$case === 'data') yield kind.value;
        else if (kind?.$case === 'closed') return;
      }
    } catch (error) {
      throw toBerthError(error);
    }
  }

  /** Resolves when the agent has ended the call (both sides closed); fails with its error. */
  async finished(): Promise<void> {
    try {
      for (;;) if ((await this.answers.next()).done) return;
    } catch (error) {
      throw toBerthError(error);
    }
  }

  /** Sends bytes to the container's side; resolves when the stream takes more. */
  send(data: Buffer): Promise<void> {
    return send(this.call, { kind: { $case: 'data', value: data } });
  }

  /** Half-closes towards the container's side. */
  closeWrite(): void {
    this.call.write({ kind: { $case: 'closeWrite', value: {} } });
    this.call.end();
  }

  cancel(): void {
    this.call.cancel();
  }
}

/** A client attached to a running container's own streams (Attach). Cancel to detach. */
export class RemoteAttachment {
  private exit: number | undefined;

  private constructor(
    private readonly call: ClientDuplexStream<AttachRequest, AttachResponse>,
    private readonly answers: AsyncIterator<AttachResponse>,
  ) {}

  /** Attaches; with `stdin`, as the one client that writes to the container's input. */
  static async open(raw: TaskServiceClient, options: { taskId: string; containerName: string; stdin?: boolean; signal?: AbortSignal }): Promise<RemoteAttachment> {
    const start = AttachRequest.fromPartial({ kind: { $case: 'start', value: { taskId: options.taskId, containerName: options.containerName, stdin: options.stdin ?? false } } });
    const { call, answers } = await openDuplex(() => raw.attach(new Metadata()), start, options.signal);
    return new RemoteAttachment(call, answers);
  }

  /** The container's output from the moment of attaching, until its process exits. */
  output(): AsyncGenerator<{ stream: 'stdout' | 'stderr'; data: Buffer }> {
    return outputOf(this.answers, (code) => (this.exit = code));
  }

  /** The container's exit code, once `output()` has ended with its exit. */
  get exitCode(): number | undefined {
    return this.exit;
  }

  write(data: Buffer): Promise<void> {
    return send(this.call, { kind: { $case: 'stdin', value: data } });
  }

  resize(size: TerminalSize): Promise<void> {
    return send(this.call, { kind: { $case: 'resize', value: size } });
  }

  /** Detaches: the container runs on. */
  cancel(): void {
    this.call.cancel();
  }
}
