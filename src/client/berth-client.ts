import { Metadata, status, type CallOptions as GrpcCallOptions, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { TaskStatus, type Task } from '../gen/berth/agent/v1/task.js';
import type { TaskDefinition } from '../gen/berth/agent/v1/task_definition.js';
import {
  ExecRequest,
  GetAgentInfoRequest,
  GetTaskRequest,
  ListTasksRequest,
  LogsRequest,
  RunTaskRequest,
  StatsRequest,
  StopTaskRequest,
  TaskServiceClient,
  WatchEventsRequest,
  type DeepPartial,
  type ExecResponse,
  type GetAgentInfoResponse,
  type ListTasksResponse,
  type LogsResponse,
  type RunTaskResponse,
  type StatsResponse,
  type StopTaskResponse,
  type WatchEventsResponse,
} from '../gen/berth/agent/v1/task_service.js';
import { channelFor, type ConnectOptions } from './connection.js';
import { CancelledError, toBerthError } from './errors.js';
import { watchEvents, type WatchItem, type WatchOptions } from './event-watch.js';
import { waitForTask, type WaitOptions } from './task-waits.js';
import { RemoteAttachment, RemoteExecSession, RemoteForward, type ExecSessionOptions } from './sessions.js';

/** Per call: when to give up, and a signal that cancels it. */
export interface CallOptions {
  /** Milliseconds before the call fails with DEADLINE_EXCEEDED; 30 s by default for unary calls, none for streams. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** The unary calls of the TaskService, by their names in the generated client. */
type UnaryMethod = 'runTask' | 'stopTask' | 'getTask' | 'listTasks' | 'getAgentInfo' | 'exec';

const DEFAULT_UNARY_TIMEOUT_MS = 30_000;
/** ListTasks pages are followed at most this many times (a page holds at least one task). */
const MAX_PAGES = 1_000_000;

/**
 * A client of one berth agent: every TaskService call as a typed promise or async iterable,
 * failures as BerthError subclasses, a WatchEvents that resumes across reconnects, and the waits a
 * control plane writes. Requests take partial messages: unset fields are their defaults.
 */
export class BerthClient {
  /** The generated grpc-js client on the same channel, for what this class does not cover. */
  readonly raw: TaskServiceClient;

  constructor(readonly options: ConnectOptions) {
    const channel = channelFor(options);
    this.raw = new TaskServiceClient(channel.target, channel.credentials, channel.options);
  }

  /** The agent's address, as given. */
  get address(): string {
    return this.options.address;
  }

  runTask(definition: DeepPartial<TaskDefinition>, options?: CallOptions): Promise<RunTaskResponse> {
    return this.unary('runTask', RunTaskRequest.fromPartial({ task: definition }), options);
  }

  stopTask(taskId: string, reason = '', options?: CallOptions): Promise<StopTaskResponse> {
    return this.unary('stopTask', StopTaskRequest.fromPartial({ taskId, reason }), options);
  }

  async getTask(taskId: string, options?: CallOptions): Promise<Task> {
    const response = await this.unary<{ task?: Task }>('getTask', GetTaskRequest.fromPartial({ taskId }), options);
    return response.task!;
  }

  /** One page of tasks; `nextPageToken` asks for the next. */
  listTasks(request: DeepPartial<ListTasksRequest> = {}, options?: CallOptions): Promise<ListTasksResponse> {
    return this.unary('listTasks', ListTasksRequest.fromPartial(request), options);
  }

  /** Every task the agent has for the filter, following the pages (1000 tasks a page). */
  async listAllTasks(filter: { statuses?: TaskStatus[]; family?: string } = {}, options?: CallOptions): Promise<Task[]> {
    const tasks: Task[] = [];
    let pageToken = '';
    for (let page = 0; page < MAX_PAGES; page++) {
      const response = await this.listTasks({ ...filter, pageSize: 1000, pageToken }, options);
      tasks.push(...response.tasks);
      if (!response.nextPageToken) break;
      pageToken = response.nextPageToken;
    }
    return tasks;
  }

  getAgentInfo(options?: CallOptions): Promise<GetAgentInfoResponse> {
    return this.unary('getAgentInfo', GetAgentInfoRequest.fromPartial({}), options);
  }

  /**
   * Runs a command in a running container and answers with its exit code and output. The call's
   * own deadline is the command's timeout plus 30 s unless `options.timeoutMs` says otherwise.
   */
  exec(request: { taskId: string; containerName: string; command: string[]; timeoutMs?: number }, options?: CallOptions): Promise<ExecResponse> {
    const timeout = request.timeoutMs === undefined ? undefined : { seconds: Math.floor(request.timeoutMs / 1000), nanos: (request.timeoutMs % 1000) * 1e6 };
    const commandMs = request.timeoutMs ?? DEFAULT_UNARY_TIMEOUT_MS;
    return this.unary('exec', ExecRequest.fromPartial({ taskId: request.taskId, containerName: request.containerName, command: request.command, timeout }), {
      timeoutMs: commandMs + DEFAULT_UNARY_TIMEOUT_MS,
      ...options,
    });
  }

  /**
   * Starts a process in a running container with its standard streams on a stream of its own
   * (`docker exec -it`): resolves once it runs. See RemoteExecSession.
   */
  execSession(options: ExecSessionOptions): Promise<RemoteExecSession> {
    return RemoteExecSession.open(this.raw, options);
  }

  /** Attaches to a running container's own streams (`docker attach`). See RemoteAttachment. */
  attach(options: { taskId: string; containerName: string; stdin?: boolean; signal?: AbortSignal }): Promise<RemoteAttachment> {
    return RemoteAttachment.open(this.raw, options);
  }

  /** Opens one TCP connection to `port` at 127.0.0.1 inside the task's network namespace. See RemoteForward. */
  portForward(options: { taskId: string; port: number; containerName?: string; signal?: AbortSignal }): Promise<RemoteForward> {
    return RemoteForward.open(this.raw, options);
  }

  /** A container's output, message by message (each a run of lines); with `follow`, until its process exits. */
  logs(request: DeepPartial<LogsRequest>, options?: CallOptions): AsyncIterable<LogsResponse> {
    return this.serverStream((metadata, callOptions) => this.raw.logs(LogsRequest.fromPartial(request), metadata, callOptions), options);
  }

  /** Resource use of a task's running containers; with `stream`, a message every interval. */
  stats(request: DeepPartial<StatsRequest>, options?: CallOptions): AsyncIterable<StatsResponse> {
    return this.serverStream((metadata, callOptions) => this.raw.stats(StatsRequest.fromPartial(request), metadata, callOptions), options);
  }

  /** One WatchEvents stream as the agent sends it, no resuming: see `watch` for the stream a control plane wants. */
  watchEvents(request: DeepPartial<WatchEventsRequest>, options?: CallOptions): AsyncIterable<WatchEventsResponse> {
    return this.serverStream((metadata, callOptions) => this.raw.watchEvents(WatchEventsRequest.fromPartial(request), metadata, callOptions), options);
  }

  /**
   * The agent's events, each exactly once and in order, across reconnects and agent restarts:
   * see WatchOptions. Ends only when the caller stops iterating, its signal aborts, or on an error
   * that retrying cannot mend (a bad request, a permission).
   */
  watch(options: WatchOptions = {}): AsyncIterable<WatchItem> {
    return watchEvents(this, options);
  }

  /**
   * Resolves with the task once its known status is `awaited` (or past it, short of STOPPED);
   * fails with TaskStoppedError (with the reasons) when it stops instead, TaskWaitTimeoutError
   * after `timeoutMs`, TaskRemovedError when it is cleaned up meanwhile, NotFoundError when the
   * agent does not have it.
   */
  waitForTask(taskId: string, awaited: TaskStatus, options: WaitOptions = {}): Promise<Task> {
    return waitForTask(this, taskId, awaited, options);
  }

  /** RunTask (idempotent on the task id), then waitForTask: RUNNING unless `awaited` says otherwise. */
  async runAndWait(definition: DeepPartial<TaskDefinition>, options: WaitOptions & { awaited?: TaskStatus } = {}): Promise<Task> {
    const response = await this.runTask(definition, { signal: options.signal });
    return this.waitForTask(response.task!.definition!.id, options.awaited ?? TaskStatus.TASK_STATUS_RUNNING, options);
  }

  /** StopTask, then waits until the task is STOPPED (its containers stopped and its network gone). */
  async stopAndWait(taskId: string, reason = '', options: WaitOptions = {}): Promise<Task> {
    await this.stopTask(taskId, reason, { signal: options.signal });
    return this.waitForTask(taskId, TaskStatus.TASK_STATUS_STOPPED, options);
  }

  close(): void {
    this.raw.close();
  }

  private unary<Res>(method: UnaryMethod, request: object, options: CallOptions = {}): Promise<Res> {
    const callOptions: GrpcCallOptions = { deadline: new Date(Date.now() + (options.timeoutMs ?? DEFAULT_UNARY_TIMEOUT_MS)) };
    return new Promise<Res>((resolve, reject) => {
      const signal = options.signal;
      if (signal?.aborted) return reject(new CancelledError(status.CANCELLED, 'cancelled by the caller'));
      const fn = this.raw[method] as unknown as (r: object, m: Metadata, o: GrpcCallOptions, cb: (e: ServiceError | null, v: Res) => void) => { cancel(): void };
      const onAbort = () => call.cancel();
      const call = fn.call(this.raw, request, new Metadata(), callOptions, (error, value) => {
        signal?.removeEventListener('abort', onAbort);
        if (error) reject(toBerthError(error));
        else resolve(value);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private async *serverStream<Res>(open: (metadata: Metadata, options: GrpcCallOptions) => ClientReadableStream<Res>, options: CallOptions = {}): AsyncGenerator<Res> {
    if (options.signal?.aborted) throw new CancelledError(status.CANCELLED, 'cancelled by the caller');
    const stream = open(new Metadata(), options.timeoutMs === undefined ? {} : { deadline: new Date(Date.now() + options.timeoutMs) });
    const onAbort = () => stream.cancel();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const message of stream as AsyncIterable<Res>) yield message;
    } catch (error) {
      throw toBerthError(error);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      stream.cancel();
    }
  }
}

/** Connects to a berth agent: a unix socket path, `unix:///path` or `host:port`, with TLS when asked. */
export function connect(options: ConnectOptions): BerthClient {
  return new BerthClient(options);
}
