import type { ContainerRuntime } from '../runtime/container-runtime.js';
import { isRuntimeError } from '../runtime/errors.js';
import type { ContainerStatsSample, LogLine, LogStream } from '../runtime/types.js';
import { DeadlineExceededError, FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError, type FieldViolation } from './errors.js';
import { DEFAULT_REQUEST_LIMITS, type RequestLimits } from './admission/request-limits.js';
import { commandViolations, execSessionViolations, type ExecSessionRequest } from './admission/session-validation.js';
import { ExecSession } from './sessions/exec-session.js';
import { AttachedClient } from './sessions/container-attachment.js';
import { ForwardedConnection } from './sessions/forwarded-connection.js';
import type { RuntimeMonitor } from './runtime-monitor.js';
import { StreamSlots } from './stream-slots.js';
import type { ContainerStatus } from './model/status.js';

export type { ContainerStatsSample, LogLine, LogStream };

const EXEC_DEFAULT_TIMEOUT_MS = 30_000;
const EXEC_MAX_TIMEOUT_MS = 600_000;
const EXEC_MAX_OUTPUT = 1024 * 1024;
/** engine.sessionIdleTimeout's default. */
export const DEFAULT_SESSION_IDLE_TIMEOUT_MS = 60 * 60_000;
export const STATS_DEFAULT_INTERVAL_MS = 1000;
const STATS_MIN_INTERVAL_MS = 100;
const STATS_MAX_INTERVAL_MS = 60_000;

/** A container of a task as the engine knows it, for access from outside. */
export interface AccessTarget {
  name: string;
  runtimeId?: string;
  knownStatus: ContainerStatus;
}

/** The application containers of a task (the pause container is not among them), or undefined for an unknown task. */
export type TargetLookup = (taskId: string) => AccessTarget[] | undefined;

export interface LogRequest {
  follow: boolean;
  tail?: number;
  since?: Date;
  streams?: LogStream[];
  signal: AbortSignal;
}

export interface StatsRequest {
  stream: boolean;
  intervalMs?: number;
  signal: AbortSignal;
}

export interface ContainerStats extends ContainerStatsSample {
  containerName: string;
  /** Share of one CPU over the interval, in percent. */
  cpuPercent: number;
}

/**
 * What people do with the containers of a task once they run: run a command in one (exec, or an
 * interactive session), reach one of its ports (port forwarding), read its output (logs), watch
 * its resource use (stats). Errors say which of NOT_FOUND,
 * FAILED_PRECONDITION, INVALID_ARGUMENT, DEADLINE_EXCEEDED or UNAVAILABLE applies.
 */
export class ContainerAccess {
  constructor(
    private readonly runtime: ContainerRuntime,
    private readonly monitor: RuntimeMonitor,
    private readonly lookup: TargetLookup,
    private readonly limits: Pick<RequestLimits, 'commandArguments' | 'commandBytes' | 'stringBytes' | 'environmentBytes' | 'logFollows' | 'statsStreams' | 'concurrentExecs'> = DEFAULT_REQUEST_LIMITS,
    /** An interactive session through which nothing passed for this long is ended. */
    private readonly sessionIdleTimeoutMs = DEFAULT_SESSION_IDLE_TIMEOUT_MS,
  ) {
    this.execs = new StreamSlots(limits.concurrentExecs, 'limits.concurrentExecs', 'execs');
    this.follows = new StreamSlots(limits.logFollows, 'limits.logFollows', 'log follows');
    this.statsStreams = new StreamSlots(limits.statsStreams, 'limits.statsStreams', 'stats streams');
  }

  /** Log messages the runtime's log forwarding dropped, for the metrics. */
  logMessagesDropped(): Promise<number> {
    return this.runtime.logMessagesDropped();
  }

  private readonly execs: StreamSlots;
  private readonly follows: StreamSlots;
  private readonly statsStreams: StreamSlots;

  private containersOf(taskId: string): AccessTarget[] {
    const containers = this.lookup(taskId);
    if (!containers) throw new NotFoundError('task', taskId);
    return containers;
  }

  private target(taskId: string, containerName: string): AccessTarget {
    const target = this.containersOf(taskId).find((c) => c.name === containerName);
    if (!target) throw new NotFoundError('container', `${taskId}/${containerName}`);
    return target;
  }

  private running(taskId: string, target: AccessTarget): string {
    if (target.knownStatus !== 'RUNNING' || !target.runtimeId) {
      throw new FailedPreconditionError(`container "${target.name}" of task "${taskId}" is ${target.knownStatus}, not RUNNING`, `task/${taskId}/container/${target.name}`);
    }
    return target.runtimeId;
  }

  private checkAvailable(): void {
    const availability = this.monitor.availability;
    if (!availability.available) throw new UnavailableError(availability.reason);
  }

  /** Maps a runtime failure; `what` says what could not be done. */
  private failure(error: unknown, what: string): Error {
    if (isRuntimeError(error, 'unavailable')) return new UnavailableError(error.detail);
    return new FailedPreconditionError(`${what}: ${error instanceof Error ? error.message : String(error)}`);
  }

  /**
   * Runs a command in a running container (what `docker exec` and `kubectl exec` do, without a
   * terminal). The output is stdout and stderr interleaved, at most 1 MiB.
   */
  async exec(taskId: string, containerName: string, command: string[], timeoutMs = EXEC_DEFAULT_TIMEOUT_MS, signal?: AbortSignal): Promise<{ exitCode: number; output: Buffer }> {
    const violations: FieldViolation[] = commandViolations(command, this.limits);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > EXEC_MAX_TIMEOUT_MS) violations.push({ field: 'timeout', description: `must be between 1 ms and 10 min (got ${timeoutMs} ms)` });
    if (violations.length > 0) throw new InvalidArgumentError(violations, 'invalid request');
    const runtimeId = this.running(taskId, this.target(taskId, containerName));
    this.checkAvailable();
    const release = this.execs.take();
    try {
      return await this.runtime.exec(runtimeId, command, { timeoutMs, maxOutputBytes: EXEC_MAX_OUTPUT, signal });
    } catch (error) {
      if (isRuntimeError(error, 'timeout')) throw new DeadlineExceededError(`the command did not finish within ${timeoutMs} ms`);
      throw this.failure(error, `cannot exec in container "${containerName}"`);
    } finally {
      release();
    }
  }

  /**
   * Starts a process in a running container for a client who holds its standard streams (an
   * interactive exec, `docker exec -it`). It holds a slot of limits.concurrentExecs until it is
   * closed, and is closed when nothing passes either way for the session idle timeout.
   */
  async openExecSession(request: ExecSessionRequest): Promise<ExecSession> {
    const violations = execSessionViolations(request, this.limits);
    if (violations.length > 0) throw new InvalidArgumentError(violations, 'invalid request');
    const runtimeId = this.running(request.taskId, this.target(request.taskId, request.containerName));
    this.checkAvailable();
    const release = this.execs.take();
    try {
      const process = await this.runtime.openSession(runtimeId, request.command, {
        tty: request.tty,
        stdin: request.stdin,
        terminalSize: request.terminalSize,
        env: request.env,
        user: request.user || undefined,
        workingDir: request.workingDir || undefined,
      });
      return new ExecSession(process, this.sessionIdleTimeoutMs, release);
    } catch (error) {
      release();
      if (isRuntimeError(error, 'invalid')) throw new InvalidArgumentError([{ field: 'start', description: error.detail }], 'invalid request');
      throw this.failure(error, `cannot exec in container "${request.containerName}"`);
    }
  }

  /** Containers whose standard input an attached client holds, by runtime id. */
  private readonly stdinHolders = new Set<string>();

  /**
   * Attaches a client to a running container's own streams (`docker attach`): its output from
   * now on and, with `stdin`, its input, which one client at a time holds. It holds a slot of
   * limits.concurrentExecs until it detaches.
   */
  async attach(taskId: string, containerName: string, stdin: boolean): Promise<AttachedClient> {
    const runtimeId = this.running(taskId, this.target(taskId, containerName));
    this.checkAvailable();
    if (stdin && this.stdinHolders.has(runtimeId)) throw new FailedPreconditionError(`another client holds the standard input of container "${containerName}" of task "${taskId}"`);
    const releaseSlot = this.execs.take();
    if (stdin) this.stdinHolders.add(runtimeId);
    const release = () => {
      if (stdin) this.stdinHolders.delete(runtimeId);
      releaseSlot();
    };
    try {
      return new AttachedClient(await this.runtime.attach(runtimeId, { stdin }), this.sessionIdleTimeoutMs, release);
    } catch (error) {
      release();
      if (isRuntimeError(error, 'invalid')) throw new FailedPreconditionError(`cannot write to container "${containerName}": ${error.detail}`);
      throw this.failure(error, `cannot attach to container "${containerName}"`);
    }
  }

  /**
   * Opens one TCP connection to `port` at 127.0.0.1 in the network namespace of a running
   * container of the task (the named one, or the first that runs). It holds a slot of
   * limits.concurrentExecs until it ends.
   */
  async openPortForward(taskId: string, containerName: string, port: number): Promise<ForwardedConnection> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError([{ field: 'start.port', description: `must be between 1 and 65535 (got ${port})` }], 'invalid request');
    const target = containerName ? this.target(taskId, containerName) : this.containersOf(taskId).find((c) => c.knownStatus === 'RUNNING' && c.runtimeId);
    if (!target) throw new FailedPreconditionError(`no container of task "${taskId}" is RUNNING`);
    const runtimeId = this.running(taskId, target);
    this.checkAvailable();
    let pid: number | undefined;
    try {
      pid = (await this.runtime.inspectContainer(runtimeId)).pid;
    } catch (error) {
      throw this.failure(error, `cannot find the network namespace of container "${target.name}"`);
    }
    if (!pid) throw new FailedPreconditionError(`container "${target.name}" of task "${taskId}" is not running`);
    const release = this.execs.take();
    return ForwardedConnection.open(`/proc/${pid}/ns/net`, port, this.sessionIdleTimeoutMs, release);
  }

  /**
   * A container's output, from a container that runs or ran (until the task is cleaned up). With
   * follow, new lines until the container's process exits or the signal aborts.
   */
  async logs(taskId: string, containerName: string, request: LogRequest): Promise<AsyncIterable<LogLine>> {
    if (request.since && Number.isNaN(request.since.getTime())) throw new InvalidArgumentError([{ field: 'since', description: 'must be a valid time' }], 'invalid request');
    const target = this.target(taskId, containerName);
    if (!target.runtimeId) throw new FailedPreconditionError(`container "${containerName}" of task "${taskId}" has no logs: it was never created (${target.knownStatus})`);
    this.checkAvailable();
    const release = request.follow ? this.follows.take() : () => undefined;
    let lines: AsyncIterable<LogLine>;
    try {
      lines = await this.runtime.logs(target.runtimeId, request);
    } catch (error) {
      release();
      if (isRuntimeError(error, 'not-found')) throw new FailedPreconditionError(`container "${containerName}" of task "${taskId}" has no logs any more: it was removed`);
      throw this.failure(error, `cannot read the logs of container "${containerName}"`);
    }
    return (async function* () {
      try {
        for await (const line of lines) yield* splitLongLine(line);
      } finally {
        release();
      }
    })();
  }

  /** One sample of a running container's resource use (cumulative counters), as the runtime reports it. */
  async sample(taskId: string, containerName: string): Promise<ContainerStatsSample> {
    const runtimeId = this.running(taskId, this.target(taskId, containerName));
    this.checkAvailable();
    try {
      return await this.runtime.stats(runtimeId);
    } catch (error) {
      throw this.failure(error, `cannot read the resource use of container "${containerName}"`);
    }
  }

  /**
   * Resource use of a task's running containers (one, or all when `containerName` is empty): each
   * result compares two samples `intervalMs` apart. Without `stream`, one result. A streamed
   * series ends when none of the containers runs any more, or when the signal aborts.
   */
  async *stats(taskId: string, containerName: string, request: StatsRequest): AsyncGenerator<{ time: Date; containers: ContainerStats[] }> {
    const intervalMs = request.intervalMs ?? STATS_DEFAULT_INTERVAL_MS;
    if (!Number.isFinite(intervalMs) || intervalMs < STATS_MIN_INTERVAL_MS || intervalMs > STATS_MAX_INTERVAL_MS) {
      throw new InvalidArgumentError([{ field: 'interval', description: `must be between ${STATS_MIN_INTERVAL_MS} ms and 1 min (got ${intervalMs} ms)` }], 'invalid request');
    }
    const targets = () => (containerName ? [this.target(taskId, containerName)] : this.containersOf(taskId));
    const chosen = targets();
    if (containerName) this.running(taskId, chosen[0]!);
    else if (!chosen.some((c) => c.knownStatus === 'RUNNING' && c.runtimeId)) throw new FailedPreconditionError(`no container of task "${taskId}" is RUNNING`);
    this.checkAvailable();
    const release = request.stream ? this.statsStreams.take() : () => undefined;
    try {
      yield* this.series(targets, containerName, taskId, intervalMs, request);
    } finally {
      release();
    }
  }

  private async *series(targets: () => AccessTarget[], containerName: string, taskId: string, intervalMs: number, request: StatsRequest): AsyncGenerator<{ time: Date; containers: ContainerStats[] }> {
    const sampleAll = async (): Promise<Map<string, ContainerStatsSample>> => {
      const samples = new Map<string, ContainerStatsSample>();
      const running = targets().filter((c) => c.knownStatus === 'RUNNING' && c.runtimeId);
      await Promise.all(
        running.map(async (c) => {
          try {
            samples.set(c.name, await this.runtime.stats(c.runtimeId!));
          } catch (error) {
            // A container that stopped meanwhile is left out; anything else is the caller's to know.
            if (!isRuntimeError(error, 'conflict') && !isRuntimeError(error, 'not-found')) throw this.failure(error, `cannot read the resource use of container "${c.name}"`);
          }
        }),
      );
      return samples;
    };

    let previous = await sampleAll();
    while (previous.size > 0 && !request.signal.aborted) {
      const waited = await pause(intervalMs, request.signal);
      if (!waited) return;
      const current = await sampleAll();
      const containers: ContainerStats[] = [];
      for (const [name, sample] of current) {
        const before = previous.get(name);
        containers.push({ ...sample, containerName: name, cpuPercent: before ? cpuPercent(before, sample) : 0 });
      }
      if (containers.length === 0) return;
      yield { time: new Date(Math.max(...containers.map((c) => c.time.getTime()))), containers };
      if (!request.stream) return;
      previous = current;
    }
    if (previous.size === 0 && containerName) throw new FailedPreconditionError(`container "${containerName}" of task "${taskId}" is not running`);
  }
}

/** The longest line a Logs answer carries; longer ones are split (as Docker's log drivers do). */
export const MAX_LOG_LINE_BYTES = 16 * 1024;

/** A line cut into pieces of at most MAX_LOG_LINE_BYTES; every piece but the last is partial. */
export function* splitLongLine(line: LogLine): Generator<LogLine> {
  if (line.text.length <= MAX_LOG_LINE_BYTES) {
    yield line;
    return;
  }
  for (let start = 0; start < line.text.length; start += MAX_LOG_LINE_BYTES) {
    const end = start + MAX_LOG_LINE_BYTES;
    yield { ...line, text: line.text.subarray(start, end), partial: end < line.text.length ? true : line.partial };
  }
}

/** Share of one CPU used between two samples, in percent. */
export function cpuPercent(before: ContainerStatsSample, after: ContainerStatsSample): number {
  const wallNanos = (after.time.getTime() - before.time.getTime()) * 1_000_000;
  const cpuNanos = after.cpuUsageNanos - before.cpuUsageNanos;
  if (wallNanos <= 0 || cpuNanos < 0) return 0;
  return Math.round((cpuNanos / wallNanos) * 100 * 100) / 100;
}

/** Waits; false when the signal aborted first. */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
