import { mkdtempSync } from 'node:fs';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientReadableStream, ServiceError } from '@grpc/grpc-js';
import { pino } from 'pino';
import { startAgent, type Agent } from '../../src/agent.js';
import { connect, type BerthClient } from '../../src/client/berth-client.js';
import { compileConfig, defaultConfigInput, type BerthConfig } from '../../src/config/config.js';
import type { Event } from '../../src/gen/berth/agent/v1/event.js';
import { ContainerStatus, TaskStatus, type Task } from '../../src/gen/berth/agent/v1/task.js';
import type { TaskDefinition } from '../../src/gen/berth/agent/v1/task_definition.js';
import {
  type TaskServiceClient,
  type ExecResponse,
  type GetAgentInfoResponse,
  type ListTasksRequest,
  type ListTasksResponse,
  type RunTaskResponse,
  type StopTaskResponse,
  type WatchEventsRequest,
  type WatchEventsResponse,
} from '../../src/gen/berth/agent/v1/task_service.js';
import type { RuntimeEnvironment } from './runtime-environment.js';

export interface TestAgent {
  agent: Agent;
  config: BerthConfig;
  /** The project's client (src/client) on the agent's socket. */
  berth: BerthClient;
  /** The generated client on the same channel (`berth.raw`), for tests of the wire itself. */
  client: TaskServiceClient;
  /** The task calls scenarios make, on `berth`. */
  calls: TaskCalls;
  socketPath: string;
  stop(): Promise<void>;
}

let agentCounter = 0;

/**
 * The dynamic host port range of the tests' agents, one per runtime: the Docker and the containerd
 * suites run side by side (scripts/test-lanes.ts), and agents of both that picked the lowest free
 * port of one range at the same moment would pick the same one. Docker's agents take 42000-42999,
 * containerd's 44000-44999 by default; a scenario that wants a range of its own takes an `offset`
 * of 1000 or more (up to 1999), clear of both.
 */
export function testPortRange(kind: string, offset = 0, size = 1000): string {
  const first = (kind === 'containerd' ? 44000 : 42000) + offset;
  return `${first}-${first + size - 1}`;
}

/** The runtime kind of an agent's `runtime` config section (Docker unless it says containerd). */
const runtimeKindOf = (runtime: unknown) => ((runtime as { kind?: string } | undefined)?.kind === 'containerd' ? 'containerd' : 'docker');

/**
 * Starts a berth agent in this process on a private socket, talking to the given Docker host or to
 * the runtime of a runtime environment.
 */
export async function startTestAgent(
  target: string | (Pick<RuntimeEnvironment, 'runtimeConfig'> & Partial<Pick<RuntimeEnvironment, 'networkConfig' | 'agentIds'>>),
  overrides: Record<string, unknown> = {},
  /** Receives every log line (JSON) of the agent, at the level of `logLevel`. */
  logs?: (line: string) => void,
): Promise<TestAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-agent-'));
  const socketPath = (overrides.grpc as { socket?: string } | undefined)?.socket ?? join(dir, 'berth.sock');
  const base = defaultConfigInput(typeof target === 'string' ? { DOCKER_HOST: target } : {});
  const runtime = typeof target === 'string' ? base.runtime : { ...(base.runtime as object), ...target.runtimeConfig };
  const raw = {
    ...base,
    runtime,
    agentId: `test-${process.pid}-${agentCounter++}`,
    dataDir: (overrides.dataDir as string | undefined) ?? dir,
    logLevel: (overrides.logLevel as string | undefined) ?? process.env.BERTH_TEST_LOG_LEVEL ?? 'silent',
    grpc: { ...(base.grpc as object), socketMode: '0660', ...(overrides.grpc as object), socket: socketPath },
    engine: { ...(base.engine as object), defaultStopTimeout: '10s', taskCleanupWait: '1h', runtimeCheckInterval: '1s', ...(overrides.engine as object) },
    events: { ...(base.events as object), retain: 100_000, maxWatcherLag: 10_000, heartbeatInterval: '10s', ...(overrides.events as object) },
    resources: { ...(base.resources as object), dynamicPortRange: testPortRange(runtimeKindOf(runtime)), ...(overrides.resources as object) },
    images: { ...(base.images as object), ...(overrides.images as object) },
    metrics: { ...(base.metrics as object), ...(overrides.metrics as object) },
    metadata: { ...(base.metadata as object), ...(overrides.metadata as object) },
    security: { ...(base.security as object), ...(overrides.security as object) },
    logs: { ...(base.logs as object), ...(overrides.logs as object) },
    limits: { ...(base.limits as object), ...(overrides.limits as object) },
    secrets: { ...(base.secrets as object), ...(overrides.secrets as object) },
    network: networkSection(base.network as Record<string, unknown>, typeof target === 'string' ? undefined : target.networkConfig, overrides.network as Record<string, unknown> | undefined),
  };
  const config = compileConfig(raw as Record<string, unknown>);
  if (typeof target !== 'string') target.agentIds?.add(config.agentId);
  const logger = logs ? pino({ level: config.logLevel }, new Writable({ write: (chunk: Buffer, _encoding, done) => (logs(chunk.toString('utf8')), done()) })) : pino({ level: config.logLevel });
  const agent = await startAgent(config, logger);
  const berth = connect({ address: socketPath });
  return {
    agent,
    config,
    berth,
    client: berth.raw,
    calls: taskCalls(berth),
    socketPath,
    async stop() {
      berth.close();
      await agent.stop();
    },
  };
}

/** The config's `network` section: the defaults, then the environment's network, then the test's overrides. */
function networkSection(...layers: (Record<string, unknown> | undefined)[]): Record<string, unknown> {
  let section: Record<string, unknown> = {};
  for (const layer of layers) {
    if (!layer) continue;
    section = { ...section, ...layer, cni: { ...(section.cni as object), ...(layer.cni as object) } };
  }
  return section;
}

/** Promisifies one unary method of the generated client: the raw gRPC error when it fails. */
export function call<Req, Res>(client: TaskServiceClient, method: 'runTask' | 'stopTask' | 'getTask' | 'listTasks' | 'getAgentInfo' | 'exec', request: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    (client[method] as unknown as (r: Req, cb: (e: ServiceError | null, v: Res) => void) => void).call(client, request, (error, value) => (error ? reject(error) : resolve(value)));
  });
}

/** The task calls a scenario makes, typed: RunTask, GetTask, StopTask, ListTasks, GetAgentInfo, Exec. */
export interface TaskCalls {
  run(definition: TaskDefinition): Promise<RunTaskResponse>;
  get(taskId: string): Promise<Task | undefined>;
  stop(taskId: string, reason?: string): Promise<StopTaskResponse>;
  /**
   * RunTask, then waits until the task is `status` (RUNNING unless said otherwise) and returns it;
   * fails with the task's and its containers' reasons when it ends up otherwise.
   */
  runUntil(definition: TaskDefinition, status?: TaskStatus, timeoutMs?: number): Promise<Task>;
  /** Runs a shell script in a container: its exit code and output (trimmed). */
  shell(taskId: string, containerName: string, script: string): Promise<{ code: number; output: string }>;
  /** StopTask, then the task's STOPPED event: its containers and network are gone when this resolves. */
  stopAndWait(taskId: string, reason?: string): Promise<void>;
  /** Every task, in one page. */
  list(): Promise<Task[]>;
  /** One page of ListTasks, as asked. */
  listPage(request: Partial<ListTasksRequest>): Promise<ListTasksResponse>;
  info(): Promise<GetAgentInfoResponse>;
  /** Exec in one container of a task; `timeoutSeconds` unset means the agent's default. */
  exec(taskId: string, containerName: string, command: string[], timeoutSeconds?: number): Promise<ExecResponse>;
}

export function taskCalls(client: BerthClient): TaskCalls {
  return {
    run: (definition) => client.runTask(definition),
    get: async (taskId) => client.getTask(taskId),
    stop: (taskId, reason = '') => client.stopTask(taskId, reason),
    runUntil: (definition, status = TaskStatus.TASK_STATUS_RUNNING, timeoutMs = 90_000) => client.runAndWait(definition, { awaited: status, timeoutMs }),
    shell: async (taskId, containerName, script) => {
      const result = await client.exec({ taskId, containerName, command: ['sh', '-c', script] });
      return { code: result.exitCode, output: Buffer.from(result.output).toString('utf8').trim() };
    },
    stopAndWait: async (taskId, reason = '') => {
      await client.stopAndWait(taskId, reason, { timeoutMs: 60_000 });
    },
    list: async () => (await client.listTasks()).tasks,
    listPage: (request) => client.listTasks(request),
    info: () => client.getAgentInfo(),
    exec: (taskId, containerName, command, timeoutSeconds) => client.exec({ taskId, containerName, command, ...(timeoutSeconds === undefined ? {} : { timeoutMs: timeoutSeconds * 1000 }) }),
  };
}

/**
 * Reads a server stream to its end: its messages, or the error it ended with. `onMessage` may
 * cancel it (the CANCELLED status that follows is not an error then).
 */
export async function readStream<Res>(stream: ClientReadableStream<Res>, onMessage?: (message: Res) => void | Promise<void>): Promise<Res[]> {
  const messages: Res[] = [];
  let cancelled = false;
  const cancel = stream.cancel.bind(stream);
  stream.cancel = () => {
    cancelled = true;
    cancel();
  };
  try {
    for await (const message of stream as AsyncIterable<Res>) {
      messages.push(message);
      await onMessage?.(message);
    }
  } catch (error) {
    if (!(cancelled && (error as ServiceError).code === 1)) throw error;
  }
  return messages;
}

/**
 * Collects a WatchEvents stream and lets tests await the first message matching a predicate.
 * Every wait has a deadline, so a missing event fails the test instead of hanging it.
 */
export class EventCollector {
  readonly messages: WatchEventsResponse[] = [];
  error: ServiceError | undefined;
  ended = false;
  private readonly waiters: { predicate: (m: WatchEventsResponse) => boolean; resolve: (m: WatchEventsResponse) => void }[] = [];
  private readonly endWaiters: (() => void)[] = [];
  readonly stream: ClientReadableStream<WatchEventsResponse>;

  constructor(client: TaskServiceClient, request: Partial<WatchEventsRequest>) {
    this.stream = client.watchEvents({ fromSequence: 0, includeSnapshot: false, taskIds: [], maxEventsPerMessage: 0, maxBatchDelayMs: 0, ...request });
    this.stream.on('data', (message: WatchEventsResponse) => {
      this.messages.push(message);
      for (const waiter of [...this.waiters]) {
        if (waiter.predicate(message)) {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          waiter.resolve(message);
        }
      }
    });
    this.stream.on('error', (error: ServiceError) => {
      this.error = error;
    });
    this.stream.on('close', () => {
      this.ended = true;
      for (const resolve of this.endWaiters.splice(0)) resolve();
    });
  }

  get events(): Event[] {
    return this.messages.flatMap((m) => (m.kind?.$case === 'event' ? [m.kind.value] : m.kind?.$case === 'events' ? m.kind.value.events : []));
  }

  /** Resolves with the first message (already received or future) that matches. */
  waitFor(what: string, predicate: (m: WatchEventsResponse) => boolean, timeoutMs = 30_000): Promise<WatchEventsResponse> {
    const found = this.messages.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(
          this.waiters.findIndex((w) => w.resolve === done),
          1,
        );
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; got ${this.messages.length} messages${this.error ? `, error ${this.error.message}` : ''}; where the stream's tasks stood:\n${describeTasks(this.events)}`,
          ),
        );
      }, timeoutMs);
      const done = (m: WatchEventsResponse) => {
        clearTimeout(timer);
        resolve(m);
      };
      this.waiters.push({ predicate, resolve: done });
    });
  }

  /** Waits for an event matching `predicate`. */
  async waitForEvent(what: string, predicate: (e: Event) => boolean, timeoutMs?: number): Promise<Event> {
    const eventsOf = (m: WatchEventsResponse) => (m.kind?.$case === 'event' ? [m.kind.value] : m.kind?.$case === 'events' ? m.kind.value.events : []);
    const message = await this.waitFor(what, (m) => eventsOf(m).some(predicate), timeoutMs);
    return eventsOf(message).find(predicate)!;
  }

  waitForEnd(timeoutMs = 30_000): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('stream did not end')), timeoutMs);
      this.endWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.stream.cancel();
  }
}

/**
 * Where each task of a stream stood at its last events: the task's status and reason, and each
 * container's. Written into a wait's timeout, so that a task that never got where a test awaited
 * it says why. At most 30 tasks are described, the most recently changed.
 */
export function describeTasks(events: readonly Event[]): string {
  const tasks = new Map<string, { task: string; containers: Map<string, string> }>();
  for (const event of events) {
    const change = event.change;
    if (change?.$case !== 'task' && change?.$case !== 'container') continue;
    const entry = tasks.get(event.taskId) ?? { task: '(no task event)', containers: new Map<string, string>() };
    tasks.delete(event.taskId);
    tasks.set(event.taskId, entry);
    if (change.$case === 'task') {
      entry.task = `${TaskStatus[change.value.knownStatus]}${change.value.reason ? ` (${change.value.reason})` : ''}`;
    } else if (change.value.container) {
      const c = change.value.container;
      entry.containers.set(c.name, `${ContainerStatus[c.knownStatus]}${c.exitCode === undefined ? '' : ` exit ${c.exitCode}`}${c.reason ? ` (${c.reason})` : ''}`);
    }
  }
  const lines = [...tasks].slice(-30).map(([id, { task, containers }]) => `  ${id}: ${task}${[...containers].map(([name, status]) => `; ${name} ${status}`).join('')}`);
  if (tasks.size > 30) lines.unshift(`  (${tasks.size - 30} more tasks not shown)`);
  return lines.length === 0 ? '  (no task or container events)' : lines.join('\n');
}

/** Runs `body` with a collector on a WatchEvents stream, and closes the stream afterwards. */
export async function watching<T>(client: TaskServiceClient, request: Partial<WatchEventsRequest>, body: (watch: EventCollector) => Promise<T>): Promise<T> {
  const watch = new EventCollector(client, request);
  try {
    return await body(watch);
  } finally {
    watch.close();
  }
}
